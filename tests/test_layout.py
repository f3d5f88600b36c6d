"""The script reads top to bottom: its contents list and its banners agree, and its constants come before their use."""

import ast
import re

from conftest import SCRIPT

SOURCE = SCRIPT.read_text()


def contents_list():
    """The section names the module docstring lists, in order."""
    docstring = ast.get_docstring(ast.parse(SOURCE))
    listing = docstring.split("Contents, low level first", 1)[1].split("\n\n", 1)[0]
    return [re.split(r"\s{2,}", line.strip())[0] for line in listing.splitlines()[1:]]


def banners():
    return re.findall(r"^# === (.+?) =+$", SOURCE, re.M)


def test_the_contents_list_and_the_banners_are_the_same_list_in_the_same_order():
    assert contents_list() == banners()


def test_every_section_is_listed_with_what_it_holds():
    docstring = ast.get_docstring(ast.parse(SOURCE))
    for name in banners():
        assert re.search(rf"^    {re.escape(name)}\s{{2,}}\S", docstring, re.M), name


def test_constants_come_before_their_first_use():
    """ACTIONS is the exception: the table of what the script does is last, since it names every operation."""
    tree = ast.parse(SOURCE)
    defined = {}
    for node in tree.body:
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name) and target.id.isupper():
                    defined.setdefault(target.id, node.lineno)
    used_early = sorted(
        (node.id, node.lineno, defined[node.id])
        for node in ast.walk(tree)
        if isinstance(node, ast.Name) and node.id in defined and node.lineno < defined[node.id]
    )
    assert [use for use in used_early if use[0] != "ACTIONS"] == []

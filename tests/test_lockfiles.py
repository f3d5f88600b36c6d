"""The two lockfiles agree: uv.lock (the project, its tests and dev server) and
scripts/manage_memories.py.lock (what `uv run scripts/manage_memories.py` installs).

A user runs the script with the versions its own lock names, and the tests ran it with
uv.lock's: every package both hold must be the same release, or the tests vouch for a
script no user gets. README.md, "Updating dependencies", says how to renew both.
"""

import re
import tomllib
from collections import defaultdict

from conftest import ROOT, SCRIPT
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

PROJECT_LOCK = ROOT / "uv.lock"
SCRIPT_LOCK = SCRIPT.with_name(SCRIPT.name + ".lock")


def locked_versions(lockfile):
    """Package name -> every version the lock holds of it (one per Python range it forks on)."""
    versions = defaultdict(set)
    for package in tomllib.loads(lockfile.read_text())["package"]:
        if "version" in package:  # the project itself, a virtual package, has none
            versions[package["name"]].add(package["version"])
    return versions


def normalized(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def script_metadata():
    """The TOML of the `# /// script` block at the top of the script (PEP 723)."""
    lines = SCRIPT.read_text().splitlines()
    start = lines.index("# /// script") + 1
    end = lines.index("# ///", start)
    return tomllib.loads("\n".join(line.removeprefix("#").removeprefix(" ") for line in lines[start:end]))


def script_requirements():
    return [Requirement(line) for line in script_metadata()["dependencies"]]


def test_the_script_lock_holds_the_versions_the_project_lock_holds():
    project, script = locked_versions(PROJECT_LOCK), locked_versions(SCRIPT_LOCK)
    # The project depends on everything the script does, so uv.lock holds every package too.
    assert script.keys() - project.keys() == set()
    assert script == {name: project[name] for name in script}


def test_every_dependency_of_the_script_is_locked_at_a_version_it_allows():
    locked = locked_versions(SCRIPT_LOCK)
    for requirement in script_requirements():
        versions = locked.get(normalized(requirement.name))
        assert versions, f"{requirement.name} is not in {SCRIPT_LOCK.name}"
        assert all(Version(version) in requirement.specifier for version in versions), (requirement, versions)


def test_the_script_lock_was_made_from_the_scripts_dependencies():
    # When the lock's manifest is not the script's metadata, `uv run` resolves again on the
    # user's machine and rewrites the lock there (uv 0.13.9): it no longer decides what is installed.
    manifest = tomllib.loads(SCRIPT_LOCK.read_text())["manifest"]["requirements"]
    assert {(entry["name"], SpecifierSet(entry.get("specifier", ""))) for entry in manifest} == {
        (normalized(requirement.name), requirement.specifier) for requirement in script_requirements()
    }

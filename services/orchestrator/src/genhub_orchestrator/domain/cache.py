"""The prompt cache key: same normalized prompt and same parameters → same key.

Normalization folds case, collapses whitespace and drops punctuation, so "A cat, on a mat!"
and "a cat on a  mat" share a result. Everything else that changes the picture is part of the
key: model, size, style, seed, negative prompt, number of outputs, quality, input images and
the provider parameters, and the post-processing storage applies (format, pdf dpi, the
watermark a free-tier job gets): a stamped picture is never reused for a paid job. The cache
is per app (the caller keys entries by app id): one
tenant's outputs are never handed to another.
"""

import hashlib
import json
import re
import unicodedata

from genhub_contracts import GenerationInput, Plan, Watermark

_PUNCTUATION = re.compile(r"[^\w\s]", re.UNICODE)
_SPACE = re.compile(r"\s+", re.UNICODE)


def normalize_prompt(prompt: str) -> str:
    text = unicodedata.normalize("NFKC", prompt).casefold()
    text = _PUNCTUATION.sub(" ", text)
    return _SPACE.sub(" ", text).strip()


def cache_key(
    model: str,
    width: int,
    height: int,
    spec_input: GenerationInput,
    watermark: Watermark | None = None,
) -> str:
    """SHA-256 hex of the normalized request; `watermark` is the one the outputs will carry."""
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
        "dpi": spec_input.dpi,
        "watermark": watermark.model_dump(mode="json") if watermark else None,
        "images": list(spec_input.images),
        "params": spec_input.provider_params,
    }
    blob = json.dumps(material, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def applied_watermark(plan: Plan, watermark: Watermark | None) -> Watermark | None:
    """The watermark storage stamps: the app's, on free-tier jobs only."""
    return watermark if plan is Plan.FREE else None

"""Model weights, shared by detect and evaluate: where they come from (`files`), what their
headers say without loading them (`metadata`), the Hugging Face Hub (`hub`), LoRA adapters
(`adapters`). Other packages use these names only."""

from .adapters import AdapterError, read_adapter
from .adapters import apply as apply_adapter, check as check_adapter, local_dir as adapter_dir
from .files import (GGUF_FORMATS, Weights, WeightsError, conversion_seconds, convert_gguf, load_model,
                    load_tokenizer, model_digest, model_dir, resolve_weights)
from .hub import HubUnreachable, hub_metadata, require_hub
from .metadata import MetadataError, gguf_metadata, hf_dir_metadata

__all__ = ["AdapterError", "GGUF_FORMATS", "HubUnreachable", "MetadataError", "Weights", "WeightsError", "adapter_dir",
           "apply_adapter", "check_adapter", "conversion_seconds", "convert_gguf", "gguf_metadata",
           "hf_dir_metadata", "hub_metadata", "load_model", "load_tokenizer", "model_digest", "model_dir",
           "read_adapter", "require_hub", "resolve_weights"]

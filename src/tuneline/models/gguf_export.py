"""Write a merged HF model folder as GGUF (llama.cpp, Ollama) with the `gguf` package alone:
no llama.cpp build, no conversion script downloaded. Llama-family models only for now.

What llama.cpp needs and what goes wrong most often is carried over from the HF folder: the
architecture metadata, the tokenizer (vocabulary, merges, token types, special token ids), the
chat template and the end-of-turn / end-of-sequence ids, so that a served GGUF stops where the
trained model stops. Beside it, an Ollama Modelfile whose TEMPLATE is rendered from the same
chat template and whose `stop` parameters name every end token.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuneline._optional import require
from tuneline.errors import ModelError

QUANTS = ("f16", "q8_0", "q4_0")
SUPPORTED_ARCHITECTURES = ("LlamaForCausalLM",)
MODELFILE = "Modelfile"
# Sentinels rendered through the chat template to find where each part of a turn goes.
_SYSTEM, _USER, _ASSISTANT = "\x00SYSTEM\x00", "\x00USER\x00", "\x00ASSISTANT\x00"


@dataclass(frozen=True)
class GgufExport:
    """What was written: the GGUF file, the Modelfile, and the end tokens both stop on."""

    gguf_path: Path
    modelfile: Path
    stop_tokens: tuple[str, ...]


def write_gguf(model_dir: Path, folder: Path, name: str, quant: str = "f16") -> GgufExport:
    """`folder/<name>.gguf` and `folder/Modelfile` from a plain HF model folder."""
    if quant not in QUANTS:
        raise ModelError(f"unknown GGUF quantisation '{quant}'; use one of {', '.join(QUANTS)}")
    transformers = require("transformers")
    config = transformers.AutoConfig.from_pretrained(model_dir)
    architectures = list(getattr(config, "architectures", None) or [])
    if not set(architectures) & set(SUPPORTED_ARCHITECTURES):
        raise ModelError(f"GGUF export does not support {', '.join(architectures) or 'this'} "
                         f"architecture yet (supported: {', '.join(SUPPORTED_ARCHITECTURES)}); "
                         "export --format hf and convert it with llama.cpp")
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
    gguf_path = folder / f"{name}.gguf"
    writer = require("gguf").GGUFWriter(str(gguf_path), "llama")
    _write_metadata(writer, config, name, quant)
    stops = _write_tokenizer(writer, tokenizer, config)
    _write_tensors(writer, model_dir, config, quant)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    modelfile = folder / MODELFILE
    modelfile.write_text(ollama_modelfile(tokenizer, gguf_path.name, stops), encoding="utf-8")
    return GgufExport(gguf_path, modelfile, stops)


def _write_metadata(writer: Any, config: Any, name: str, quant: str) -> None:
    gguf = require("gguf")
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    writer.add_name(name)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(heads)
    writer.add_head_count_kv(getattr(config, "num_key_value_heads", None) or heads)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(float(_rope_theta(config)))
    writer.add_layer_norm_rms_eps(float(config.rms_norm_eps))
    writer.add_vocab_size(config.vocab_size)
    file_types = {"f16": gguf.LlamaFileType.MOSTLY_F16, "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
                  "q4_0": gguf.LlamaFileType.MOSTLY_Q4_0}
    writer.add_file_type(file_types[quant])
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)


def _rope_theta(config: Any) -> float:
    theta = getattr(config, "rope_theta", None)
    if theta is None:  # transformers 5 keeps it in rope_parameters
        theta = (getattr(config, "rope_parameters", None) or {}).get("rope_theta", 10000.0)
    return float(theta)


def _write_tokenizer(writer: Any, tokenizer: Any, config: Any) -> tuple[str, ...]:
    """A byte-level BPE tokenizer as llama.cpp's 'gpt2' model; returns the end tokens."""
    gguf = require("gguf")
    backend = json.loads(tokenizer.backend_tokenizer.to_str())
    model = backend["model"]
    if model.get("type") != "BPE":
        raise ModelError(f"GGUF export supports byte-level BPE tokenizers; this one is "
                         f"{model.get('type')}")
    vocab: dict[str, int] = dict(model["vocab"])
    for added in backend.get("added_tokens", []):
        vocab[added["content"]] = added["id"]
    size = max(config.vocab_size, max(vocab.values()) + 1)
    by_id = {i: t for t, i in vocab.items()}
    special = {a["id"] for a in backend.get("added_tokens", []) if a.get("special")}
    tokens, types = [], []
    for i in range(size):
        token = by_id.get(i)
        tokens.append(token if token is not None else f"[PAD{i}]")
        types.append(gguf.TokenType.CONTROL if i in special
                     else gguf.TokenType.UNUSED if token is None else gguf.TokenType.NORMAL)
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(_llama_cpp_pre_tokenizer(backend.get("pre_tokenizer")))
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    writer.add_add_bos_token(False)
    writer.add_add_space_prefix(False)
    ids = {"bos": tokenizer.bos_token_id, "eos": tokenizer.eos_token_id,
           "unk": tokenizer.unk_token_id, "pad": tokenizer.pad_token_id}
    for kind, token_id in ids.items():
        if token_id is not None:
            getattr(writer, f"add_{kind}_token_id")(int(token_id))
    end_of_turn = _end_of_turn(tokenizer)
    if end_of_turn is not None and end_of_turn != tokenizer.eos_token:
        writer.add_eot_token_id(int(vocab[end_of_turn]))
    if tokenizer.chat_template:
        writer.add_chat_template(tokenizer.chat_template)
    return tuple(dict.fromkeys(t for t in (end_of_turn, tokenizer.eos_token) if t))


def _llama_cpp_pre_tokenizer(pre: dict[str, Any] | None) -> str:
    """llama.cpp's name for how the tokenizer splits text before BPE (`tokenizer.ggml.pre`).

    A wrong name loads without complaint and tokenizes differently from training: "default"
    split 47 of 115 of the demo's prompts otherwise (apostrophes, "-57kg"), checked in
    llama.cpp itself (docs/log.md, 2026-12-06 afternoon).

    Raises:
        ModelError: a pre-tokenizer with no llama.cpp equivalent known here.
    """
    steps = (pre or {}).get("pretokenizers") if (pre or {}).get("type") == "Sequence" else [pre]
    kinds = [(step or {}).get("type") for step in steps or []]
    if kinds == ["ByteLevel"] and steps[0].get("use_regex", True):
        return "gpt-2"  # GPT-2's split regex, then bytes to characters
    if (kinds == ["Digits", "ByteLevel"] and steps[0].get("individual_digits")
            and steps[1].get("use_regex", True)):
        return "smollm"  # digits one by one, then GPT-2's
    raise ModelError(f"GGUF export: no llama.cpp pre-tokenizer known for {json.dumps(pre)}; "
                     "only GPT-2's byte-level split (with or without single digits) is "
                     "supported yet")


def _end_of_turn(tokenizer: Any) -> str | None:
    """The special token the chat template closes an assistant turn with (ChatML's
    <|im_end|>), found by rendering a turn."""
    if not tokenizer.chat_template:
        return None
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": _USER}, {"role": "assistant", "content": _ASSISTANT}],
        tokenize=False)
    after = rendered.split(_ASSISTANT, 1)[1]
    for token in tokenizer.all_special_tokens:
        if after.lstrip().startswith(token):
            return str(token)
    return None


def _write_tensors(writer: Any, model_dir: Path, config: Any, quant: str) -> None:
    gguf = require("gguf")
    np = require("numpy")
    torch = require("torch")
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config.num_hidden_layers)
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    kind = None if quant == "f16" else getattr(gguf.GGMLQuantizationType, quant.upper())
    for hf_name, tensor in _state_dict(model_dir).items():
        if hf_name == "lm_head.weight" and config.tie_word_embeddings:
            continue  # llama.cpp reuses token_embd for a tied output
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise ModelError(f"GGUF export: no llama.cpp name for tensor {hf_name}")
        data = tensor.to(torch.float32).numpy()
        if hf_name.endswith("q_proj.weight"):
            data = _permute(data, heads)
        elif hf_name.endswith("k_proj.weight"):
            data = _permute(data, kv_heads)
        if data.ndim == 1:
            writer.add_tensor(name, data.astype(np.float32))
        elif kind is None or data.shape[-1] % gguf.GGML_QUANT_SIZES[kind][0]:
            writer.add_tensor(name, data.astype(np.float16))  # f16, or rows too short to quantise
        else:
            writer.add_tensor(name, gguf.quants.quantize(data, kind), raw_dtype=kind)


def _permute(weights: Any, heads: int) -> Any:
    """llama.cpp's rotary layout for q/k projections (its converter's `permute`)."""
    return (weights.reshape(heads, 2, weights.shape[0] // heads // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def _state_dict(model_dir: Path) -> dict[str, Any]:
    safetensors = require("safetensors.torch")
    files = sorted(Path(model_dir).glob("*.safetensors"))
    if not files:
        raise ModelError(f"{model_dir} holds no .safetensors weights")
    state: dict[str, Any] = {}
    for file in files:
        state.update(safetensors.load_file(str(file)))
    return state


def ollama_modelfile(tokenizer: Any, gguf_name: str, stops: tuple[str, ...]) -> str:
    """An Ollama Modelfile: TEMPLATE rendered from the tokenizer's chat template (Go template
    syntax), a stop parameter per end token, and the template's default system prompt."""
    turns, generation, default_system = _turn_parts(tokenizer)
    branches = "".join(
        f'{{{{ {"if" if i == 0 else "else if"} eq .Role "{role}" }}}}{before}{{{{ .Content }}}}'
        f"{after}" for i, (role, (before, after)) in enumerate(turns.items()))
    # no whitespace trimming ({{- ...}}) between turns: a turn may end with a line break
    template = f"{{{{- range .Messages }}}}{branches}{{{{ end }}}}{{{{ end }}}}{generation}"
    lines = [f"FROM ./{gguf_name}", "", f'TEMPLATE """{template}"""']
    if default_system:
        lines.append(f'SYSTEM """{default_system}"""')
    lines += [f'PARAMETER stop "{stop}"' for stop in stops]
    return "\n".join(lines) + "\n"


def _turn_parts(tokenizer: Any) -> tuple[dict[str, tuple[str, str]], str, str]:
    """({role: (text before the content, text after)}, the generation prompt, the default
    system prompt), found by rendering conversations that differ by one turn."""

    def render(messages: list[tuple[str, str]], prompt: bool = False) -> str:
        return str(tokenizer.apply_chat_template(
            [{"role": r, "content": c} for r, c in messages], tokenize=False,
            add_generation_prompt=prompt))

    def added(shorter: str, longer: str, sentinel: str) -> tuple[str, str]:
        if not longer.startswith(shorter) or sentinel not in longer[len(shorter):]:
            raise ModelError("the chat template does not render turns one after another; "
                             "GGUF export cannot write an Ollama TEMPLATE for it")
        before, after = longer[len(shorter):].split(sentinel, 1)
        return before, after

    first = [("system", _SYSTEM), ("user", _USER)]
    answered = [*first, ("assistant", _ASSISTANT)]
    rendered_first, rendered_answered = render(first), render(answered)
    user = added(rendered_answered, render([*answered, ("user", _USER)]), _USER)
    assistant = added(rendered_first, rendered_answered, _ASSISTANT)
    user_turn = user[0] + _USER + user[1]
    system = tuple(rendered_first[: -len(user_turn)].split(_SYSTEM, 1))
    generation = render(first, prompt=True)[len(rendered_first):]
    default_block = render([("user", _USER)])[: -len(user_turn) or None]
    default_system = ""
    if default_block.startswith(system[0]) and default_block.endswith(system[1]):
        default_system = default_block[len(system[0]): len(default_block) - len(system[1])]
    return ({"system": (system[0], system[1]), "user": user, "assistant": assistant},
            generation, default_system)

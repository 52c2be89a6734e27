"""Offline stand-ins for weights that cannot be downloaded here: a tiny random Gemma 3 with a tokenizer trained on
the spot, a tiny random Cosmos-Predict2 VAE, and a meta-device Gemma 3 4B to check the real sizes against.

The loading code stays real: each is saved to a directory in the Hugging Face layout and loaded back with
``from_pretrained`` exactly as ``google/gemma-3-4b-it`` would be.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

SPECIAL_TOKENS = (
    "<pad>",
    "<eos>",
    "<bos>",
    "<unk>",
    "<start_of_turn>",
    "<end_of_turn>",
    "<start_of_image>",
    "<end_of_image>",
    "<image_soft_token>",
)
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}<start_of_turn>"
    "{{ 'model' if message['role'] == 'assistant' else message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}{% for item in message['content'] %}"
    "{% if item['type'] == 'image' %}<start_of_image>{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)
"""Gemma 3's chat layout (turns, ``<start_of_image>`` where an image goes; the processor expands it)."""
BASE_CORPUS = (
    "user model yes no the a an of in on to is will which what how many where after before first second frame\n",
    "0 1 2 3 4 5 6 7 8 9 , . ? - x y red green blue yellow orange purple white black grey cyan magenta",
)


@dataclass(frozen=True)
class TinyGemmaSize:
    """The tiny config of the tests and CPU numbers (issue 16: text hidden 64, 2 layers; SigLIP 2 layers; 32 px)."""

    hidden: int = 64
    layers: int = 2
    heads: int = 2
    image_size: int = 32
    patch_size: int = 8
    vision_hidden: int = 32
    image_tokens: int = 4
    vocab_size: int = 400


def train_tokenizer(texts: Iterable[str], vocab_size: int = 400):
    """A byte-less BPE trained on ``texts`` with Gemma's "▁" space normaliser, as a ``GemmaTokenizer``."""
    from tokenizers import Tokenizer, decoders, models, normalizers, trainers
    from transformers import GemmaTokenizer

    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.normalizer = normalizers.Replace(" ", "▁")
    bpe.decoder = decoders.Replace("▁", " ")
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS), show_progress=False)
    bpe.train_from_iterator([*BASE_CORPUS, *texts], trainer)
    model = json.loads(bpe.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    tokenizer = GemmaTokenizer(
        vocab=model["vocab"],
        merges=merges,
        extra_special_tokens={
            "boi_token": "<start_of_image>",
            "eoi_token": "<end_of_image>",
            "image_token": "<image_soft_token>",
        },
    )
    tokenizer.add_tokens(["<start_of_turn>", "<end_of_turn>"], special_tokens=True)
    return tokenizer


def tiny_processor(tokenizer, size: TinyGemmaSize = TinyGemmaSize()):
    """``Gemma3Processor`` with the PIL image processor (the default one needs torchvision)."""
    from transformers import Gemma3ImageProcessorPil, Gemma3Processor

    images = Gemma3ImageProcessorPil(size={"height": size.image_size, "width": size.image_size})
    return Gemma3Processor(images, tokenizer, chat_template=CHAT_TEMPLATE, image_seq_length=size.image_tokens)


def tiny_gemma_config(tokenizer, size: TinyGemmaSize = TinyGemmaSize()):
    from transformers import Gemma3Config, Gemma3TextConfig, SiglipVisionConfig

    ids = tokenizer.convert_tokens_to_ids
    text = Gemma3TextConfig(
        vocab_size=len(tokenizer),
        hidden_size=size.hidden,
        intermediate_size=2 * size.hidden,
        num_hidden_layers=size.layers,
        num_attention_heads=size.heads,
        num_key_value_heads=1,
        head_dim=size.hidden // size.heads,
        sliding_window=64,
        max_position_embeddings=1024,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    vision = SiglipVisionConfig(
        hidden_size=size.vision_hidden,
        intermediate_size=2 * size.vision_hidden,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=size.image_size,
        patch_size=size.patch_size,
    )
    return Gemma3Config(
        text_config=text,
        vision_config=vision,
        mm_tokens_per_image=size.image_tokens,
        image_token_index=ids("<image_soft_token>"),
        boi_token_index=ids("<start_of_image>"),
        eoi_token_index=ids("<end_of_image>"),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=[tokenizer.eos_token_id, ids("<end_of_turn>")],
        pad_token_id=tokenizer.pad_token_id,
    )


def build_tiny_gemma(
    directory: str | Path, texts: Iterable[str] = (), seed: int = 0, size: TinyGemmaSize = TinyGemmaSize()
) -> Path:
    """Train a tokenizer on ``texts``, build a random tiny Gemma 3 and save both (safetensors) to ``directory``."""
    from transformers import Gemma3ForConditionalGeneration

    tokenizer = train_tokenizer(texts, size.vocab_size)
    processor = tiny_processor(tokenizer, size)
    torch.manual_seed(seed)
    model = Gemma3ForConditionalGeneration(tiny_gemma_config(tokenizer, size))
    directory = Path(directory)
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


def build_tiny_wan_vae(directory: str | Path, seed: int = 0) -> Path:
    """A random ``AutoencoderKLWan`` (Cosmos-Predict2's VAE layout: 16 channels, 4x time, 8x space) saved here."""
    from diffusers import AutoencoderKLWan

    torch.manual_seed(seed)
    AutoencoderKLWan(base_dim=8, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1).save_pretrained(directory)
    return Path(directory)


def build_tiny_cosmos_vae(directory: str | Path, seed: int = 0) -> Path:
    """A random ``AutoencoderKLCosmos`` (the Cosmos tokenizer layout: Haar wavelet input, 16 channels, 8x time and
    space) saved here."""
    from diffusers import AutoencoderKLCosmos

    torch.manual_seed(seed)
    AutoencoderKLCosmos(
        encoder_block_out_channels=(8, 8, 8, 8),
        decode_block_out_channels=(8, 8, 8, 8),
        attention_resolutions=(),
        resolution=32,
        num_layers=1,
        latents_mean=None,
        latents_std=None,
    ).save_pretrained(directory)
    return Path(directory)


GEMMA3_4B = {
    "text": {
        "hidden_size": 2560,
        "intermediate_size": 10240,
        "num_hidden_layers": 34,
        "num_attention_heads": 8,
        "num_key_value_heads": 4,
        "head_dim": 256,
        "vocab_size": 262208,
        "sliding_window": 1024,
    },
    "vision": {
        "hidden_size": 1152,
        "intermediate_size": 4304,
        "num_hidden_layers": 27,
        "num_attention_heads": 16,
        "image_size": 896,
        "patch_size": 14,
    },
    "mm_tokens_per_image": 256,
    "image_token_index": 262144,
    "boi_token_index": 255999,
    "eoi_token_index": 256000,
}
"""google/gemma-3-4b-it's config facts (REFERENCE.md): text hidden 2560, 256 image tokens at 896 px."""


def meta_gemma3_4b():
    """``Gemma3ForConditionalGeneration`` with google/gemma-3-4b-it's config on the meta device (no memory)."""
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration, Gemma3TextConfig, SiglipVisionConfig

    config = Gemma3Config(
        text_config=Gemma3TextConfig(**GEMMA3_4B["text"]),
        vision_config=SiglipVisionConfig(**GEMMA3_4B["vision"]),
        **{k: v for k, v in GEMMA3_4B.items() if k not in ("text", "vision")},
    )
    with torch.device("meta"):
        return Gemma3ForConditionalGeneration(config)


__all__ = [
    "CHAT_TEMPLATE",
    "GEMMA3_4B",
    "TinyGemmaSize",
    "build_tiny_cosmos_vae",
    "build_tiny_gemma",
    "build_tiny_wan_vae",
    "meta_gemma3_4b",
    "tiny_gemma_config",
    "tiny_processor",
    "train_tokenizer",
]

"""Train the tiny CLIP that zsindex ships as its demo model.

    python scripts/train_demo_model.py --out zsindex/models/shapes-tiny

Draws the shapes world (zsindex.shapes), pairs every image with a caption that
names it fully ("a photo of a red circle.") or in part ("a circle",
"something red", "a red circle and a blue star"), and trains an
``open_clip.CLIP`` with a small custom config contrastively. Because partial
captions are true of many images in a batch, the loss is the multi-positive
form of CLIP's symmetric cross-entropy: each row's target spreads over every
caption that is true of that image (and each column's over every image the
caption is true of). A partial caption is only contrasted with images that
share what it leaves out, so that colour cannot stand in for shape (or shape
for colour); see ``comparable``. Colour+shape pairs in ``shapes.HELD_OUT`` are
never drawn in training. 30% of the images show one shape in a
colour outside the palette (``shapes.UNNAMED``: greys, teals, pinks, browns),
captioned by shape only, so that the image tower learns shapes apart from the
six colours they otherwise come in. Writes ``open_clip_config.json`` and fp16
``open_clip_model.safetensors``: a directory open_clip loads with
``local-dir:``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from zsindex import _compat  # noqa: E402
from zsindex.labels import DEFAULT_TEMPLATES  # noqa: E402
from zsindex.shapes import COLOURS, SHAPES, UNNAMED, Thing, draw, random_things, seen_pairs  # noqa: E402

MODEL_CFG = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 48, "layers": 3, "width": 96, "patch_size": 8, "head_width": 32, "mlp_ratio": 2.0},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 1, "mlp_ratio": 2.0},
}
MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)
TEMPLATES = tuple(DEFAULT_TEMPLATES) + ("{}", "a {}", "the {}", "a drawing of a {}.", "this is a {}.")

Description = tuple  # (colour or None, shape or None)
FULL_SHARE = 0.5  # captions naming colour and shape; the rest split evenly between shape-only and colour-only


def describe(thing: Thing, rng: np.random.Generator) -> Description:
    if thing.colour == UNNAMED:
        return (None, thing.shape)
    r = rng.random()
    if r < FULL_SHARE:
        return (thing.colour, thing.shape)
    if r < (1 + FULL_SHARE) / 2:
        return (None, thing.shape)
    return (thing.colour, None)


def phrase(desc: Description, rng: np.random.Generator) -> str:
    colour, shape = desc
    if colour and shape:
        # Mostly the plain "red circle" users type, sometimes other word orders, so that the
        # text tower learns colour and shape as separate parts rather than 20 fixed pairs.
        forms = [f"{colour} {shape}"] * 6 + [f"{shape} that is {colour}", f"{colour}-coloured {shape}",
                                              f"{colour} coloured {shape}", f"{shape} in {colour}"]
        return str(rng.choice(forms))
    if shape:
        return shape
    return str(rng.choice([colour, f"something {colour}", f"{colour} thing", f"{colour} object"]))


def caption(things: list[Thing], rng: np.random.Generator) -> tuple[str, list[Description], Description | None]:
    """A caption for a scene, the descriptions it asserts (all must hold), and its nuisance.

    The nuisance of a partial caption is what it leaves out of the thing it
    describes: the colour of "a circle" drawn from a red circle, the shape of
    "something red" drawn from a red star (see ``comparable``).
    """
    if len(things) > 1 and rng.random() < 0.4:
        descs = [describe(t, rng) for t in things]
        text = " and ".join(f"a {phrase(d, rng)}" for d in descs)
        return text, descs, None
    thing = things[int(rng.integers(len(things)))]
    desc = describe(thing, rng)
    if desc[0] is None:
        nuisance: Description | None = (thing.colour, None)
    elif desc[1] is None:
        nuisance = (None, thing.shape)
    else:
        nuisance = ("any", thing.colour, thing.shape)
    return str(rng.choice(TEMPLATES)).format(phrase(desc, rng)), [desc], nuisance


def comparable(nuisance: Description | None, things: list[Thing]) -> bool:
    """May this image serve as a negative for a caption with this nuisance?

    Only images that share the nuisance: "a circle" (from a red circle) is
    contrasted with red squares, triangles and stars, never with blue things.
    Otherwise colour would be a shortcut for shape (blue is never a circle in
    training, since blue circles are held out), and the model would learn
    that shortcut instead of what a circle looks like. A full caption ("a
    purple circle") is contrasted with things that differ from it in one
    attribute only (purple squares, red circles), for the same reason.
    """
    if nuisance is None:
        return True
    if nuisance[0] == "any":
        _, colour, shape = nuisance
        return any(t.colour == colour or t.shape == shape for t in things)
    colour, shape = nuisance
    return any((colour is None or t.colour == colour) and (shape is None or t.shape == shape) for t in things)


def holds(descs: list[Description], things: list[Thing]) -> bool:
    # A thing in an unnamed colour has no palette colour, so no colour caption is true of it.
    return all(
        any((c is None or c == t.colour) and (s is None or s == t.shape) for t in things) for c, s in descs
    )


def make_pool(n: int, size: int, rng: np.random.Generator, multi_share: float,
              unnamed_share: float = 0.3) -> tuple[np.ndarray, list[list[Thing]]]:
    pairs = seen_pairs()
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    scenes = []
    for i in range(n):
        r = rng.random()
        if r < unnamed_share:
            things = [Thing(UNNAMED, str(rng.choice(SHAPES)))]
        else:
            things = random_things(rng, pairs, 3 if r < unnamed_share + multi_share else 1)
        images[i] = draw(things, size=size, rng=rng)
        scenes.append(things)
    return images, scenes


def train(out: Path, steps: int, batch: int, pool: int, seed: int, lr: float, log_every: int = 50) -> dict:
    import torch
    import torch.nn.functional as F
    from safetensors.torch import save_file

    open_clip = _compat.import_open_clip()

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    size = MODEL_CFG["vision_cfg"]["image_size"]
    t0 = time.time()
    images, scenes = make_pool(pool, size, rng, multi_share=0.3)
    print(f"drew {pool} training images in {time.time() - t0:.1f}s", file=sys.stderr)

    model = open_clip.CLIP(**MODEL_CFG)
    tokenizer = open_clip.SimpleTokenizer(context_length=MODEL_CFG["text_cfg"]["context_length"])
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    warmup = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps)))
    )
    model.train()
    t0 = time.time()
    loss_value = float("nan")
    for step in range(steps):
        idx = rng.choice(pool, size=batch, replace=False)
        pix = torch.from_numpy(images[idx]).permute(0, 3, 1, 2).float().div_(255)
        if rng.random() < 0.5:
            pix = pix.flip(3)  # mirror: shapes and colours are unchanged by it
        pix = (pix - mean) / std
        caps = [caption(scenes[i], rng) for i in idx]
        tokens = tokenizer([c for c, _, _ in caps])
        truth = torch.tensor([[holds(d, scenes[i]) for _, d, _ in caps] for i in idx], dtype=torch.float32)
        valid = torch.tensor([[comparable(n, scenes[i]) for _, _, n in caps] for i in idx]) | truth.bool()
        img = F.normalize(model.encode_image(pix), dim=-1)
        txt = F.normalize(model.encode_text(tokens), dim=-1)
        logits = model.logit_scale.exp().clamp(max=100) * img @ txt.T
        logits = logits.masked_fill(~valid, -1e4)  # pairs that must not be compared (see comparable)
        loss = 0.5 * (
            -(truth / truth.sum(1, keepdim=True) * logits.log_softmax(1)).sum(1).mean()
            - (truth / truth.sum(0, keepdim=True) * logits.log_softmax(0)).sum(0).mean()
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        loss_value = loss.item()
        if step % log_every == 0 or step == steps - 1:
            print(f"step {step:5d} loss {loss_value:.4f} scale {model.logit_scale.exp().item():.1f} "
                  f"{time.time() - t0:.0f}s", file=sys.stderr)

    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().half().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / "open_clip_model.safetensors"))
    config = {
        "model_cfg": MODEL_CFG,
        "preprocess_cfg": {"mean": list(MEAN), "std": list(STD), "interpolation": "bicubic", "resize_mode": "shortest"},
        "zsindex": {
            "description": "tiny CLIP trained on the zsindex shapes world",
            "colours": list(COLOURS),
            "shapes": list(SHAPES),
            "seed": seed,
            "steps": steps,
            "batch": batch,
        },
    }
    (out / "open_clip_config.json").write_text(json.dumps(config, indent=2) + "\n")
    return {"steps": steps, "final_loss": loss_value, "seconds": round(time.time() - t0, 1)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("zsindex/models/shapes-tiny"))
    p.add_argument("--steps", type=int, default=4500)
    p.add_argument("--batch", type=int, default=192)
    p.add_argument("--pool", type=int, default=30000, help="training images drawn up front")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    print(json.dumps(train(args.out, args.steps, args.batch, args.pool, args.seed, args.lr)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

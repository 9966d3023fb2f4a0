"""The demo-model training script runs end to end and writes a folder open_clip loads."""

import json
import subprocess
import sys

import numpy as np

from zsindex.embedder import load_embedder

from .conftest import REPO


def test_training_script_few_steps(tmp_path):
    out = tmp_path / "model"
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "train_demo_model.py"), "--out", str(out), "--steps", "3",
         "--batch", "16", "--pool", "64"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    assert report["steps"] == 3 and np.isfinite(report["final_loss"])
    emb = load_embedder(str(out), device="cpu")
    assert emb.embed_texts(["a red circle"]).shape == (1, emb.dim)
    assert json.loads((out / "open_clip_config.json").read_text())["zsindex"]["steps"] == 3


def test_training_captions_truth():
    sys.path.insert(0, str(REPO / "scripts"))
    import train_demo_model as t

    from zsindex.shapes import Thing

    scene = [Thing("red", "circle"), Thing("blue", "star")]
    assert t.holds([("red", "circle")], scene)
    assert t.holds([(None, "star"), ("red", None)], scene)
    assert not t.holds([("red", "star")], scene)
    assert not t.holds([("green", None)], scene)


def test_partial_captions_are_only_contrasted_within_their_nuisance():
    sys.path.insert(0, str(REPO / "scripts"))
    import train_demo_model as t

    from zsindex.shapes import Thing

    # "a circle" drawn from a red circle: red things are fair negatives, blue things are not.
    assert t.comparable(("red", None), [Thing("red", "square")])
    assert not t.comparable(("red", None), [Thing("blue", "square")])
    assert t.comparable((None, "star"), [Thing("green", "star"), Thing("red", "circle")])
    assert t.comparable(None, [Thing("blue", "square")])
    rng = np.random.default_rng(0)
    for _ in range(50):
        text, descs, nuisance = t.caption([Thing("red", "circle")], rng)
        if descs == [(None, "circle")]:
            assert nuisance == ("red", None)
        elif descs == [("red", None)]:
            assert nuisance == (None, "circle")
        else:
            assert nuisance == ("any", "red", "circle")
    assert t.comparable(("any", "red", "circle"), [Thing("red", "star")])
    assert not t.comparable(("any", "red", "circle"), [Thing("blue", "star")])


def test_training_pool_never_draws_a_held_out_pair_and_unnamed_colours_stay_off_the_palette():
    sys.path.insert(0, str(REPO / "scripts"))
    import train_demo_model as t

    from zsindex import shapes

    images, scenes = t.make_pool(400, 48, np.random.default_rng(3), multi_share=0.3)
    things = [th for scene in scenes for th in scene]
    assert not any((th.colour, th.shape) in shapes.HELD_OUT for th in things)
    assert 0.2 < sum(th.colour == shapes.UNNAMED for th in things) / len(things) < 0.4
    assert not t.holds([("blue", None)], [shapes.Thing(shapes.UNNAMED, "circle")])  # no colour caption is true
    rng = np.random.default_rng(0)
    palette = np.array(list(shapes.COLOURS.values()), dtype=np.float32)
    for _ in range(300):
        colour = shapes.unnamed_colour(rng, np.full(3, 128.0))
        assert np.linalg.norm(palette - colour, axis=1).min() >= shapes.UNNAMED_MARGIN
    # a dark navy is far from the palette's blue in RGB, but it is still blue: never "unnamed"
    assert not shapes.is_unnamed(np.array([20.0, 20.0, 90.0]))
    assert shapes.is_unnamed(np.array([128.0, 128.0, 128.0])) and shapes.is_unnamed(np.array([30.0, 170.0, 160.0]))

"""The semidiscrete fit's options are described once (otgen/ot/sdot_options.h): the CLI's flags, Python's
keywords and the run record come from one table, so every option is accepted, spelled and recorded the
same way, and one set of options gives the same fit from the CLI and from Python."""
import json

import numpy as np
import pytest

import otgen
from otgen import _otgen

OPTIONS = _otgen.sdot_options()

# A non-default value of each option, as Python passes it and as the CLI's text; chosen so that the fit
# stays valid when all are given at once (adam with a warm-up, a relative epsilon, EMA averaging...).
NON_DEFAULT = {
    "epsilon": 0.05, "relative_epsilon": True, "cost": "dot", "steps": 60, "batch_size": 64, "optimizer": "adam",
    "schedule": "cosine", "lr": 0.02, "lr_final": 0.001, "adam_beta1": 0.8, "adam_beta2": 0.99, "adam_eps": 1e-6,
    "averaging": "ema", "poly_gamma": 2.0, "ema_decay": 0.9, "polyak_start": 0.25, "polyak_prior": 0.0,
    "init": "gaussian", "warmup_delta": 0.1, "warmup_steps": 20, "chi2_every": 20, "chi2_repeats": 3,
    "target_chi2": 0.0, "chi2_threshold": 1e-9, "time_limit": 100.0, "log_every": 10, "class_penalty": 5.0,
    "reference_draws": 128, "reference_points": 200, "pca": 2, "engine": "fp32",
}
# The CLI refuses --no-int8-screen beside --engine: that one is recorded in its own run.
ALONE = {"int8_screen": False}


def test_the_table_names_every_option_once():
    names = [o["name"] for o in OPTIONS]
    flags = [o["flag"] for o in OPTIONS]
    assert len(set(names)) == len(names) and len(set(flags)) == len(flags)
    assert set(NON_DEFAULT) | set(ALONE) == set(names), "give a new option a non-default value in this test"
    # The flag is the name with dashes, but for two spellings the CLI has always had.
    own = {o["name"]: o["flag"] for o in OPTIONS if o["flag"] != "--" + o["name"].replace("_", "-")}
    assert own == {"batch_size": "--batch", "int8_screen": "--no-int8-screen"}


def test_the_cli_help_lists_every_flag(cli):
    text = cli("sdot", "fit", "--help").stdout
    for o in OPTIONS:
        assert o["flag"] + " " in text, o["flag"]


def cli_args(values):
    args = []
    for name, v in values.items():
        flag = next(o["flag"] for o in OPTIONS if o["name"] == name)
        if isinstance(v, bool):
            if v != (name == "int8_screen"):  # --relative-epsilon on, --no-int8-screen off
                args.append(flag)
        else:
            args += [flag, str(v)]
    return args


def test_one_set_of_options_gives_the_same_fit_and_record_everywhere(cli, tmp_path):
    rng = np.random.default_rng(3)
    y = rng.normal(size=(200, 4)).astype(np.float32)
    labels = rng.integers(0, 3, size=200).astype(np.int64)
    np.save(tmp_path / "y.npy", y)
    np.save(tmp_path / "l.npy", labels)
    cli("sdot", "fit", "--data", tmp_path / "y.npy", "--labels", tmp_path / "l.npy", "--seed", 4, "--threads", 1,
        "-q", "--out", tmp_path / "g.npy", "--record", tmp_path / "r.json", *cli_args(NON_DEFAULT))
    sd = otgen.SemidiscreteOT(seed=4, threads=1, **NON_DEFAULT)
    r = sd.fit(y, labels=labels)
    np.testing.assert_array_equal(r.g, np.load(tmp_path / "g.npy"))
    rec = json.load(open(tmp_path / "r.json"))
    assert set(rec["options"]) == {o["name"] for o in OPTIONS}
    for name, v in NON_DEFAULT.items():
        assert rec["options"][name] == v, name
    assert len(rec["history"]) == len(r.history["step"])  # log_every 10 over 60 steps (+ the checks)
    cli("sdot", "fit", "--data", tmp_path / "y.npy", "--steps", 3, "-q", "--out", tmp_path / "g2.npy",
        "--record", tmp_path / "r2.json", *cli_args(ALONE))
    assert json.load(open(tmp_path / "r2.json"))["options"]["int8_screen"] is False


def test_the_record_names_the_defaults_as_the_table_does(cli, tmp_path):
    np.save(tmp_path / "y.npy", np.random.default_rng(1).normal(size=(50, 2)).astype(np.float32))
    cli("sdot", "fit", "--data", tmp_path / "y.npy", "--steps", 3, "-q", "--out", tmp_path / "g.npy",
        "--record", tmp_path / "r.json")
    rec = json.load(open(tmp_path / "r.json"))["options"]
    for o in OPTIONS:
        if o["name"] == "steps":
            continue
        want = o["default"]
        got = rec[o["name"]]
        text = json.dumps(got) if not isinstance(got, str) else got
        if isinstance(got, bool):
            text = "true" if got else "false"
        assert text == want or float(text) == float(want), (o["name"], got, want)


@pytest.mark.parametrize("name,value,message", [
    ("steps", 2.5, "invalid steps = 2.5 (a real): expected an integer"),
    ("epsilon", True, "invalid epsilon = true (a bool): expected a number"),
    ("optimizer", 3, "invalid optimizer = 3 (an integer): expected an optimizer name"),
    ("optimizer", "lbfgs", "invalid optimizer = lbfgs: expected one of sgd, adam"),
    ("relative_epsilon", 1, "invalid relative_epsilon = 1 (an integer): expected true or false"),
    ("batch_size", None, "invalid batch_size = auto (unset (None)): expected an integer"),
    ("no_such_option", 1, "unknown SemidiscreteOT option 'no_such_option'"),
])
def test_python_refuses_wrong_types_naming_the_keyword(name, value, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        otgen.SemidiscreteOT(**{name: value}).fit(np.zeros((4, 2), np.float32))


def test_python_accepts_numpy_scalars():
    r = otgen.SemidiscreteOT(steps=np.int64(5), epsilon=np.float32(0.25), chi2_every=0).fit(
        np.random.default_rng(0).normal(size=(20, 2)).astype(np.float32))
    assert r.steps == 5 and r.epsilon == pytest.approx(0.25)


@pytest.mark.parametrize("args,message", [
    (["--steps", "abc"], "invalid --steps = abc: expected an integer"),
    (["--lr", "fast"], "invalid --lr = fast: expected a number or 'auto'"),
    (["--epsilon", "auto"], "invalid --epsilon = auto: expected a number"),
    (["--averaging", "mean"], "invalid --averaging = mean: expected one of none, ema, polyak, poly"),
    (["--adam-beta1", "1"], "invalid --adam-beta1 = 1: expected a number in [0, 1)"),
    (["--log-every", "0"], "invalid --log-every = 0: expected a positive integer (or unset = auto)"),
])
def test_the_cli_refuses_bad_values_naming_the_flag(cli, tmp_path, args, message):
    np.save(tmp_path / "y.npy", np.zeros((4, 2), np.float32))
    r = cli("sdot", "fit", "--data", tmp_path / "y.npy", "--out", tmp_path / "g.npy", *args, check=False)
    assert r.returncode == 2 and r.stderr.strip() == "otgen: " + message, r.stderr
    assert not (tmp_path / "g.npy").exists()

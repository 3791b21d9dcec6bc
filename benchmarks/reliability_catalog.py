"""The bad-input catalog of benchmarks/reliability_campaign.py: tables of cases, one row each.

Every row is one command that must be refused: exit code 2 (3 for a tampered bundle), a single
``error:`` line on stderr (no traceback), and nothing lost. The builders that create a case's
files live in reliability_cases.py; adding a case means adding a row here.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from reliability_cases import (
    CKPT_FILE,
    DELETE,  # noqa: F401  (a mutation value rows may use)
    Case,
    _base_yaml,
    _bomb,
    _png,
    alias_bomb_in,
    bad_onnx,
    baseline_json,
    both,
    checkpoint,
    copy_onnx,
    copy_ref,
    corrupt_killed_run,
    image_folder,
    imagefolder_recipe,
    mkfifo,
    precious,
    raw_file,
    recipe_with,
    ref_with,
    tampered_bundle,
)

RUN = ["run", "{case}/r.yaml", "-q"]
NO_RUNS = ("runs",)

# (case name, mutation ops, substrings the error must name): each is `edgeslim run` on BASE_RECIPE
# changed by the ops; exit 2, one line, and no runs/ folder created.
RECIPE_MUTATIONS: list[tuple[str, tuple, tuple[str, ...]]] = [
    ("typo run.nmae", (("rename", "run.name", "nmae"),), ("nmae",)),
    ("typo run.seeed", (("rename", "run.seed", "seeed"),), ("seeed",)),
    ("typo model.sorce", (("rename", "model.source", "sorce"),), ("sorce",)),
    ("typo data.image_sise", (("rename", "data.image_size", "image_sise"),), ("image_sise",)),
    ("typo data.val_fracton", (("rename", "data.val_fraction", "val_fracton"),), ("val_fracton",)),
    ("typo stage key", (("rename", "stages.0.stage", "stag"),), ("stag",)),
    ("typo train.epochz", (("rename", "stages.0.train.epochs", "epochz"),), ("epochz",)),
    ("typo optimizer.lrr", (("rename", "stages.0.train.optimizer.lr", "lrr"),), ("lrr",)),
    ("typo schedule.nam", (("rename", "stages.0.train.schedule.name", "nam"),), ("nam",)),
    ("typo top-level stagse", (("rename", "stages", "stagse"),), ("stagse",)),
    ("unknown top-level key", (("set", "sarch", {"trials": 1}),), ("sarch",)),
    ("unknown stage finetun", (("set", "stages.0.stage", "finetun"),), ("finetun",)),
    ("unknown stage prun", (("set", "stages.0.stage", "prun"),), ("prun",)),
    ("unknown model tinycnm", (("set", "model.source", "tinycnm"),), ("tinycnm",)),
    ("unknown data source mnist", (("set", "data.source", "mnist"),), ("mnist",)),
    ("unknown torchvision model", (("set", "model.source", "torchvision:resnet19"),), ("resnet19",)),
    ("bad head_init", (("set", "model.head_init", "zeros"),), ("head_init",)),
    ("bad optimizer name", (("set", "stages.0.train.optimizer.name", "adamm"),), ("adamm",)),
    ("bad amp", (("set", "stages.0.train.amp", "fp8"),), ("amp",)),
    ("image_size string", (("set", "data.image_size", "big"),), ("image_size",)),
    ("image_size negative", (("set", "data.image_size", -1),), ("image_size",)),
    ("image_size zero", (("set", "data.image_size", 0),), ("image_size",)),
    ("image_size huge", (("set", "data.image_size", 200000),), ("image_size",)),
    ("channels 2", (("set", "data.channels", 2),), ("channels",)),
    ("val_fraction 1.5", (("set", "data.val_fraction", 1.5),), ("val_fraction",)),
    ("test_fraction negative", (("set", "data.test_fraction", -0.1),), ("test_fraction",)),
    ("val_fraction 0.5", (("set", "data.val_fraction", 0.5),), ("val_fraction",)),
    ("classes a string", (("set", "data.source", "digits"), ("set", "data.classes", "5")), ("classes",)),
    ("class 99 of digits", (("set", "data.source", "digits"), ("set", "data.classes", ["99"])), ("99",)),
    ("batch_size 0", (("set", "data.batch_size", 0),), ("batch_size",)),
    ("seed string", (("set", "run.seed", "x"),), ("seed",)),
    ("threads 0", (("set", "run.threads", 0),), ("threads",)),
    ("device tpu", (("set", "run.device", "tpu"),), ("device",)),
    ("latency_iters negative", (("set", "run.latency_iters", -1),), ("latency_iters",)),
    ("epochs string", (("set", "stages.0.train.epochs", "three"),), ("epochs",)),
    ("epochs negative", (("set", "stages.0.train.epochs", -1),), ("epochs",)),
    ("lr string", (("set", "stages.0.train.optimizer.lr", "fast"),), ("lr",)),
    ("lr .inf", (("set", "stages.0.train.optimizer.lr", float("inf")),), ("lr",)),
    ("lr .nan", (("set", "stages.0.train.optimizer.lr", float("nan")),), ("lr",)),
    ("lr negative", (("set", "stages.0.train.optimizer.lr", -0.1),), ("lr",)),
    ("train batch_size 0", (("set", "stages.0.train.batch_size", 0),), ("batch_size",)),
    ("stages a string", (("set", "stages", "finetune"),), ("stages",)),
    ("stages empty", (("set", "stages", []),), ("stages",)),
    ("stage a number", (("set", "stages", [42]),), ("stages",)),
    ("stage without name", (("set", "stages", [{"train": {"epochs": 1}}]),), ("stage",)),
    ("model a list", (("set", "model", [1, 2]),), ("model",)),
    ("data null", (("set", "data", None),), ("data",)),
    ("run a string", (("set", "run", "x"),), ("run",)),
    ("kwargs a string", (("set", "model.kwargs", "x"),), ("kwargs",)),
    ("kwargs wrong type", (("set", "model.kwargs", {"width": "wide"}),), ("width",)),
    ("kwargs unknown arg", (("set", "model.kwargs", {"widht": 8}),), ("widht",)),
    ("checkpoint missing", (("set", "model.checkpoint", "{case}/none.pt"),), ("none.pt",)),
    ("weights on a built-in", (("set", "model.weights", "IMAGENET1K_V1"),), ("weights",)),
    ("stage label ../../x", (("set", "stages.0.label", "../../x"),), ("label",)),
    ("stage label with slash", (("set", "stages.0.label", "a/b"),), ("label",)),
    ("prune ratio 1.5", (), ("ratio",)),
    ("prune ratio and macs", (), ("one of",)),
    ("quantize precision int4", (), ("int4",)),
    ("calibration samples 0", (), ("samples",)),
    ("distill temperature 0", (), ("temperature",)),
    ("export opset 5", (), ("opset",)),
    ("evaluate split dev", (), ("split",)),
    ("skip_bad_images a string", (("set", "data.skip_bad_images", "sometimes"),), ("skip_bad_images",)),
]
# The stage-level rows above add a second stage with the bad setting.
EXTRA_STAGE = {
    "prune ratio 1.5": {"stage": "prune", "target": {"ratio": 1.5}},
    "prune ratio and macs": {"stage": "prune", "target": {"ratio": 0.5, "macs": 0.5}},
    "quantize precision int4": {"stage": "quantize", "precision": "int4"},
    "calibration samples 0": {"stage": "quantize", "calibration": {"samples": 0}},
    "distill temperature 0": {"stage": "distill", "temperature": 0},
    "export opset 5": {"stage": "export", "opset": 5},
    "evaluate split dev": {"stage": "evaluate", "split": "dev"},
}

# Run names: `edgeslim run` with run.name set (and --name on the CLI). A {case}/07-important
# folder and a precious file sit where an escaping name would write or clean up.
BAD_NAMES = ["..", ".", "../escape", "a/b", "", " ", "x" * 300, "-rf", "new\nline", "name\x00nul", "~root"]

RAW_RECIPES: list[tuple[str, bytes | str | Callable[[Path], bytes | str], tuple[str, ...], tuple[str, ...]]] = [
    # (case name, file content, mention, forbid)
    ("invalid YAML", "run: {name: x\nstages: [", ("yaml",), ()),
    ("empty file", "", (), ()),
    ("only a comment", "# nothing here\n", (), ()),
    ("top-level list", "- a\n- b\n", (), ()),
    ("top-level scalar", "hello\n", (), ()),
    ("binary garbage", bytes(range(256)) * 16, (), ()),
    ("not UTF-8", b"run:\n  name: caf\xe9\n", (), ()),
    ("tabs for indentation", "run:\n\tname: x\n", (), ()),
    ("python tag runs nothing", lambda c: f"run: !!python/object/apply:os.system ['touch {c}/pwned']\n", (),
     ("pwned",)),
    ("alias bomb in model.kwargs", alias_bomb_in("kwargs"), ("alias",), ()),
    ("alias bomb in search", alias_bomb_in("search"), ("alias",), ()),
    ("alias bomb in stages", alias_bomb_in("stages"), ("alias",), ()),
    ("deeply nested", "a: " + "[" * 50000 + "]" * 50000 + "\n", (), ()),
    ("huge recipe file", lambda c: _base_yaml(c) + "# " + "x" * (30 * 1024 * 1024) + "\n", ("large",), ()),
    ("one huge key", lambda c: _base_yaml(c) + "k" * (2 * 1024 * 1024) + ": 1\n", (), ()),
]

CKPT_KINDS = ["garbage", "empty", "pickle", "json", "dir", "wrong_shape", "truncated", "safetensors", "symlink_loop"]
ONNX_KINDS = ["empty", "text", "random", "truncated", "dir", "no_inputs"]
TAMPER_KINDS = ["no_files", "files_list", "files_empty", "traversal", "hash_changed", "model_unlisted",
                "garbage_manifest", "manifest_list", "no_manifest", "model_flipped", "model_deleted", "numpy_py",
                "onnxruntime_py", "json_py", "extra_py", "sitecustomize", "image_changed"]
PLANTED = {"numpy_py", "onnxruntime_py", "json_py", "extra_py", "sitecustomize"}
GOOD_BENCH = {"schema": "edgeslim.bench/1", "host": {"cpu": "Some Other CPU 9000", "cores": 64, "machine": "x86_64"},
              "median_ms": 1.0, "samples_ms": [1.0, 1.1, 0.9], "iters": 3, "settings": {"batch": 1, "threads": 1}}



def _recipe_cases() -> list[Case]:
    out = []
    for name, ops, mention in RECIPE_MUTATIONS:
        extra = [EXTRA_STAGE[name]] if name in EXTRA_STAGE else None
        out.append(Case(f"recipe: {name}", "recipe", RUN, recipe_with(*ops, extra_stages=extra),
                        mention=mention, forbid=NO_RUNS))
    for name, content, mention, forbid in RAW_RECIPES:
        out.append(Case(f"yaml: {name}", "yaml", ["run", "{case}/r.yaml", "-q"], raw_file("r.yaml", content),
                        mention=mention, forbid=forbid + NO_RUNS))
    out += [
        Case("yaml: recipe is a folder", "yaml", ["run", "{case}/r.yaml"],
             lambda c, e: (c / "r.yaml").mkdir(), forbid=NO_RUNS),
        Case("yaml: recipe missing", "yaml", ["run", "{case}/missing.yaml"], mention=("missing.yaml",),
             forbid=NO_RUNS),
        Case("yaml: recipe is a FIFO (never read forever)", "yaml", ["run", "{case}/r.yaml"], mkfifo("r.yaml"),
             forbid=NO_RUNS, timeout=60),
        Case("yaml: validate a huge file", "yaml", ["validate", "{case}/r.yaml"],
             raw_file("r.yaml", lambda c: _base_yaml(c) + "#" + "y" * (30 * 1024 * 1024) + "\n")),
        Case("yaml: validate an alias bomb", "yaml", ["validate", "{case}/r.yaml"],
             raw_file("r.yaml", alias_bomb_in("kwargs"))),
    ]
    return out


def _name_cases() -> list[Case]:
    out = []
    guard = both(precious("07-important/keep.txt"), precious("runs/precious.txt"))
    for i, name in enumerate(BAD_NAMES):
        label = repr(name if len(name) < 20 else name[:8] + "...")
        out.append(Case(f"name: run.name {label}", "name", RUN,
                        both(guard, recipe_with(("set", "run.name", name))), forbid=("runs/bad",)))
        if i < 4:  # the CLI override takes the same check
            out.append(Case(f"name: --name {label}", "name", RUN + ["--name", name],
                            both(guard, recipe_with()), forbid=("runs/bad",)))
    out += [
        Case("name: output_dir below a file", "name", RUN, both(precious("afile"), recipe_with(
            ("set", "run.output_dir", "{case}/afile/runs"))), mention=("output_dir",)),
        Case("name: --output-dir below a file", "name", RUN + ["--output-dir", "{case}/afile/x"],
             both(precious("afile"), recipe_with()), forbid=NO_RUNS),
    ]
    return out


def _image_cases() -> list[Case]:
    bomb = _png(20000, 20000)
    real = _png(20, 20)
    rows = [
        ("FIFO named x.png (never opened)", {"a/x.png": "fifo"}, ("x.png",)),
        ("corrupt png", {"a/broken.png": "not a png"}, ("broken.png",)),
        ("zero-byte png", {"b/empty.png": None}, ("empty.png",)),
        ("truncated png", {"a/trunc.png": real[:40]}, ("trunc.png",)),
        ("20000x20000 png (decompression bomb)", {"b/bomb.png": bomb}, ("bomb.png",)),
        ("folder named d.png", {"a/d.png": "dir"}, ("d.png",)),
        ("text file named .jpg", {"b/notes.jpg": "hello"}, ("notes.jpg",)),
        ("symlink loop named loop.png", {"a/loop.png": "loop"}, ("loop.png",)),
        ("three bad files in one message", {"a/one.png": "x", "b/two.png": None, "a/three.png": "fifo"},
         ("one.png", "two.png", "three.png")),
    ]
    out = [Case(f"images: {n}", "images", RUN, both(image_folder(bad), imagefolder_recipe()), mention=m,
                forbid=NO_RUNS, timeout=120) for n, bad, m in rows]
    out += [
        Case("images: root is a file", "images", RUN, both(precious("imgs"), imagefolder_recipe()), forbid=NO_RUNS),
        Case("images: root missing", "images", RUN, imagefolder_recipe(), mention=("imgs",), forbid=NO_RUNS),
        Case("images: one class only", "images", RUN, both(image_folder(classes=("a",)), imagefolder_recipe()),
             forbid=NO_RUNS),
        Case("images: class folders without images", "images", RUN,
             both(image_folder(per_class=0), imagefolder_recipe()), forbid=NO_RUNS),
        Case("images: cifar10 without its files", "images", RUN,
             both(lambda c, e: (c / "imgs").mkdir(), imagefolder_recipe(source="cifar10")), forbid=NO_RUNS),
    ]
    return out


def _checkpoint_cases() -> list[Case]:
    out = []
    for kind in CKPT_KINDS:
        f = "{case}/" + CKPT_FILE.get(kind, "c.pt")
        forbid = ("pwned",)
        out += [
            Case(f"checkpoint {kind}: recipe model.checkpoint", "checkpoint", RUN,
                 both(checkpoint(kind), recipe_with(("set", "model.checkpoint", f))), forbid=forbid + NO_RUNS),
            Case(f"checkpoint {kind}: export", "checkpoint",
                 ["export", "tinycnn", "--kwargs", '{"width": 8}', "--checkpoint", f, "--out", "{case}/o.onnx"],
                 checkpoint(kind), forbid=forbid + ("o.onnx",)),
            Case(f"checkpoint {kind}: info", "checkpoint", ["info", "tinycnn", "--checkpoint", f], checkpoint(kind),
                 forbid=forbid),
        ]
    return out


def _onnx_cases() -> list[Case]:
    out = []
    for kind in ONNX_KINDS:
        out += [
            Case(f"onnx {kind}: bench", "onnx", ["bench", "{case}/m.onnx", "--min-time", "0", "--warmup", "1"],
                 bad_onnx(kind), needs=("onnx",)),
            Case(f"onnx {kind}: check as candidate", "onnx", ["check", "{case}/good.onnx", "{case}/m.onnx"],
                 both(copy_onnx, bad_onnx(kind)), needs=("onnx",)),
            Case(f"onnx {kind}: info", "onnx", ["info", "{case}/m.onnx"], bad_onnx(kind), needs=("onnx",)),
        ]
    return out


def _deploy_cases() -> list[Case]:
    dep = ["deploy", "{case}/ref", "--target", "x86-cpu"]
    keep = precious("mydocs/thesis.txt")

    def run_json(text: str | None) -> Callable[[Path], None]:
        def fn(ref: Path) -> None:
            (ref / "run.json").unlink()
            if text is None:
                (ref / "run.json").mkdir()
            else:
                (ref / "run.json").write_text(text)
        return fn

    rows = [
        ("--out onto a folder with a precious file", dep + ["--out", "{case}/mydocs"], keep, "."),
        ("--out . (cwd holds a precious file)", dep + ["--out", "."], keep, "mydocs"),
        ("--out onto a non-bundle folder with --force", dep + ["--out", "{case}/mydocs", "--force"], keep, "."),
        ("--out is a file", dep + ["--out", "{case}/mydocs/thesis.txt"], keep, "."),
        ("--out beside a precious DIR.tar.gz", dep + ["--out", "{case}/b"], precious("b.tar.gz", "not a bundle"),
         "."),
        ("--out is the run folder", dep + ["--out", "{case}/ref"], None, "."),
        ("--out inside a stage folder", dep + ["--out", "{case}/ref/00-finetune"], None, "."),
        ("--out empty string", dep + ["--out", ""], None, "."),
        ("unknown target", ["deploy", "{case}/ref", "--target", "x86-cpuu", "--out", "{case}/o"], None, "."),
        ("fp16 on x86-cpu", dep + ["--out", "{case}/o", "--precision", "fp16"], None, "."),
        ("--batch 0", dep + ["--out", "{case}/o", "--batch", "0"], None, "."),
        ("--batch -3", dep + ["--out", "{case}/o", "--batch", "-3"], None, "."),
    ]
    out = [Case(f"deploy: {n}", "deploy", argv, both(copy_ref, s) if s else copy_ref, cwd=cwd, needs=("ref_run",))
           for n, argv, s, cwd in rows]
    out += [
        Case("deploy: RUN_DIR missing", "deploy", ["deploy", "{case}/nope", "--target", "x86-cpu", "--out", "{case}/o"],
             forbid=("o",)),
        Case("deploy: RUN_DIR empty", "deploy", ["deploy", "{case}/e", "--target", "x86-cpu", "--out", "{case}/o"],
             lambda c, e: (c / "e").mkdir(), forbid=("o",)),
        Case("deploy: RUN_DIR is a file", "deploy", ["deploy", "{case}/f", "--target", "x86-cpu", "--out", "{case}/o"],
             precious("f"), forbid=("o",)),
        Case("deploy: garbage run.json", "deploy", dep + ["--out", "{case}/o"], ref_with(run_json("{oops")),
             needs=("ref_run",), forbid=("o",)),
        Case("deploy: run.json is a folder", "deploy", dep + ["--out", "{case}/o"], ref_with(run_json(None)),
             needs=("ref_run",), forbid=("o",)),
        Case("deploy: run.json a list", "deploy", dep + ["--out", "{case}/o"], ref_with(run_json("[1]")),
             needs=("ref_run",), forbid=("o",)),
    ]
    return out


def _export_cases() -> list[Case]:
    ex = ["export", "tinycnn", "--out", "{case}/o.onnx", "--samples", "4", "--input-size", "16"]
    rows = [
        ("--out not .onnx", ["export", "tinycnn", "--out", "{case}/o.pt"]),
        ("--input-size 0", ex + ["--input-size", "0"]),
        ("--input-size -5", ex + ["--input-size", "-5"]),
        ("--input-size 200000", ex + ["--input-size", "200000"]),
        ("--kwargs not JSON", ex + ["--kwargs", "{not json"]),
        ("--kwargs a list", ex + ["--kwargs", "[1]"]),
        ("--kwargs wrong type", ex + ["--kwargs", '{"width": "x"}']),
        ("--num-classes 0", ex + ["--num-classes", "0"]),
        ("--opset 5", ex + ["--opset", "5"]),
        ("--samples 0", ex + ["--samples", "0"]),
        ("unknown model", ["export", "tinycnnn", "--out", "{case}/o.onnx"]),
        ("--out is a folder", ["export", "tinycnn", "--out", "{case}/d.onnx", "--input-size", "16"]),
    ]
    mk = lambda c, e: (c / "d.onnx").mkdir()  # noqa: E731
    out = [Case(f"export: {n}", "export", argv, mk if "folder" in n else None, forbid=("o.onnx", "o.pt"))
           for n, argv in rows]
    out.append(Case("export: run with garbage run.json", "export", ["export", "{case}/ref", "--out", "{case}/o.onnx"],
                    ref_with(lambda r: (r / "run.json").write_text("{oops")), needs=("ref_run",),
                    forbid=("o.onnx",)))
    return out


def _bundle_cases() -> list[Case]:
    out = []
    for kind in TAMPER_KINDS:
        forbid = ("pwned",)
        # A folder without manifest.json may be "not a bundle" (2) as well as "tampered" (3).
        expect = (2, 3) if kind == "no_manifest" else (3,)
        out.append(Case(f"bundle {kind}: verify", "bundle", ["verify"], tampered_bundle(kind), expect=expect,
                        cwd="bundle", runner=True, needs=("bundle",), forbid=forbid))
        if kind in PLANTED or kind in ("no_files", "model_flipped"):
            out.append(Case(f"bundle {kind}: eval", "bundle", ["eval", "--images", "images"], tampered_bundle(kind),
                            expect=(3,), cwd="bundle", runner=True, needs=("bundle",), forbid=forbid))
    return out


def _check_cases() -> list[Case]:
    chk = ["check", "--baseline-json", "{case}/base.json", "{case}/good.onnx"]
    rows = [
        ("garbage text", "{oops"), ("a JSON list", [1, 2]), ("empty object", {}),
        ("another schema", {"schema": "other/1"}), ("a folder", "dir"),
        ("from another host", GOOD_BENCH), ("samples are strings", {**GOOD_BENCH, "samples_ms": ["a"]}),
    ]
    out = [Case(f"check baseline: {n}", "check", chk, baseline_json(v), needs=("onnx",)) for n, v in rows]
    out.append(Case("check baseline: missing file", "check", chk, copy_onnx, needs=("onnx",)))
    cand = ["check", "{case}/good.onnx", "{case}/good.onnx"]
    budget = lambda text: both(copy_onnx, raw_file("b.yaml", text))  # noqa: E731
    out += [
        Case("check: budget garbage YAML", "check", cand + ["--budget", "{case}/b.yaml"], budget("a: [\n"),
             needs=("onnx",)),
        Case("check: budget unknown key", "check", cand + ["--budget", "{case}/b.yaml"], budget("max_macz: 5\n"),
             needs=("onnx",)),
        Case("check: budget alias bomb", "check", cand + ["--budget", "{case}/b.yaml"],
             budget(_bomb() + "\nmax_macs: *a8\n"), needs=("onnx",)),
        Case("check: --max-slowdown -5", "check", cand + ["--max-slowdown", "-5"], copy_onnx, needs=("onnx",)),
        Case("check: --confidence 2", "check", cand + ["--confidence", "2"], copy_onnx, needs=("onnx",)),
        Case("check: --min-rounds 0", "check", cand + ["--min-rounds", "0"], copy_onnx, needs=("onnx",)),
        Case("check: --accuracy-from garbage", "check",
             cand + ["--budget", "{case}/b.yaml", "--accuracy-from", "{case}/a.json"],
             both(budget("min_accuracy: 0.5\n"), raw_file("a.json", "{oops")), needs=("onnx",)),
    ]
    return out


def _misc_cases() -> list[Case]:
    bench = ["bench", "{case}/good.onnx", "--min-time", "0", "--warmup", "1"]
    return [
        Case("bench: artifact missing", "misc", ["bench", "{case}/none.onnx"]),
        Case("bench: artifact is a folder", "misc", ["bench", "{case}/d"], lambda c, e: (c / "d").mkdir()),
        Case("bench: --threads 0", "misc", bench + ["--threads", "0"], copy_onnx, needs=("onnx",)),
        Case("bench: --batch 0", "misc", bench + ["--batch", "0"], copy_onnx, needs=("onnx",)),
        Case("bench: --batch a,b", "misc", bench + ["--batch", "a,b"], copy_onnx, needs=("onnx",)),
        Case("bench: --remote [::1 (unclosed)", "misc", bench + ["--remote", "me@[::1"], copy_onnx, needs=("onnx",),
             timeout=60),
        Case("run: --resume with --fresh", "misc", RUN + ["--resume", "--fresh"], recipe_with(), forbid=NO_RUNS),
        Case("info: unknown model", "misc", ["info", "resnet_huge"]),
        Case("tune: recipe without search", "misc", ["tune", "{case}/r.yaml", "-q"], recipe_with(), forbid=NO_RUNS),
        Case("validate --print | head -1 (no BrokenPipe traceback)", "misc", ["validate", "{case}/r.yaml", "--print"],
             recipe_with(), expect=(0, 1, 120, 141), pipe_head=True),
    ]


def _resume_cases() -> list[Case]:
    """A run killed mid-training, its resume state then corrupted: --fresh must recover."""
    mutable = ("rc",)  # the run folder itself is rewritten by a run that recovers
    return [
        Case("resume: corrupt state.pt, --fresh", "resume", RUN + ["--fresh"], corrupt_killed_run, expect=(0,),
             needs=("killed_run",), mutable=mutable, timeout=600),
        Case("resume: corrupt state.pt, --resume", "resume", RUN + ["--resume"], corrupt_killed_run, expect=(0, 2),
             needs=("killed_run",), mutable=mutable, timeout=600),
    ]


def catalog() -> list[Case]:
    """Every bad-input case, in a stable order."""
    return (_recipe_cases() + _name_cases() + _image_cases() + _checkpoint_cases() + _onnx_cases()
            + _deploy_cases() + _export_cases() + _bundle_cases() + _check_cases() + _misc_cases()
            + _resume_cases())

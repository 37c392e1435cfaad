"""The layering of DESIGN.md, checked on the sources: a layer includes public headers of its own layer
and the layers below it only, internal headers (src/<layer>/*.h) of its own layer only, and each layer
library in CMakeLists.txt links only layers below it. A public header's layer is its folder:
include/otgen/<layer>/NAME.h."""
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[2]

# layer -> the layers it may use (transitively closed below).
BELOW = {
    "core": set(),
    "data": {"core"},
    "kernels": {"core"},
    "ode": {"core"},
    "ot": {"core", "kernels"},
    "wfr": {"core", "kernels"},
    "coupling": {"core", "kernels", "ot"},
    "metrics": {"core", "kernels", "ot"},
    "dist": {"core"},
    "flow": {"core", "data", "kernels", "ode", "ot", "wfr", "coupling", "metrics"},
}
FRONT_ENDS = {"cli", "python"}

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def includes(path):
    return INCLUDE.findall(path.read_text(errors="replace"))


def sources():
    """(layer, file) for every library source and public header."""
    for f in sorted((ROOT / "src").glob("*/*")):
        if f.suffix in (".cpp", ".h"):
            yield f.parent.name, f
    for f in sorted((ROOT / "include" / "otgen").glob("*/*.h")):
        yield f.parent.name, f


def test_every_public_header_is_in_a_layer_folder():
    inc = ROOT / "include" / "otgen"
    loose = [f.name for f in inc.glob("*.h")]
    assert not loose, f"move these headers to include/otgen/<layer>/: {loose}"
    folders = {f.name for f in inc.iterdir() if f.is_dir()}
    assert folders <= set(BELOW), f"unknown layer folders under include/otgen: {folders - set(BELOW)}"


def violations():
    bad = []
    for layer, f in sources():
        if layer in FRONT_ENDS or layer not in BELOW:  # unknown folders: test_every_public_header_is_in_a_layer_folder
            continue
        allowed = BELOW[layer] | {layer}
        for inc in includes(f):
            head, _, rest = inc.partition("/")
            if head == "otgen":
                used = rest.partition("/")[0] if "/" in rest else None  # otgen/<layer>/NAME.h
                if used is not None and used not in allowed:
                    bad.append(f"{f.relative_to(ROOT)} ({layer}) includes {inc} ({used})")
            elif head in BELOW and head != layer:
                bad.append(f"{f.relative_to(ROOT)} ({layer}) includes {inc}, internal to {head}")
    return bad


def test_layers_include_only_layers_below_them():
    assert violations() == []


def test_the_check_sees_an_upward_include(tmp_path, monkeypatch):
    # The check itself: a kernels file including an ot header and an internal header of ot is caught.
    fake = ROOT / "src" / "kernels" / "zz_layer_probe.h"
    try:
        fake.write_text('#include "otgen/ot/semidiscrete.h"\n#include "ot/semidiscrete_internal.h"\n')
        found = violations()
    finally:
        fake.unlink()
    assert len([v for v in found if "zz_layer_probe" in v]) == 2


def test_layer_libraries_link_only_layers_below():
    text = (ROOT / "CMakeLists.txt").read_text()
    calls = re.findall(r"otgen_layer\((\w+)([^)]*)\)", text)
    assert {name for name, _ in calls} == set(BELOW) - {"flow"}
    for name, args in calls:
        deps = set(re.findall(r"otgen_(\w+)", args))
        assert deps <= BELOW[name], f"otgen_{name} links {deps - BELOW[name]}"
    flow = re.search(r"target_link_libraries\(otgen_flow([^)]*)\)", text).group(1)
    assert set(re.findall(r"otgen_(\w+)", flow)) - {"flow"} <= BELOW["flow"]

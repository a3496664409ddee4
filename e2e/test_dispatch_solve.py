"""v2g-dispatch-solve, the operator's "what would you do with this fleet?":
the decision it prints for every strategy (invariants over random fleets,
the LP's objective against glpsol's), the instance format's options, and
malformed input: exit status 2 with one line naming the field, never a
crash. Runs the built binary directly; no stack needed."""

import json
import os
import pathlib
import random
import re
import subprocess
import tempfile

import pytest

PROG = "v2g-dispatch-solve"
EPS = 1e-6
STRATEGIES = ["smart", "equal", "lp", "priority"]
BANDS = {"FCR": (20, 100), "AFRR": (20, 100), "LOAD_SHEDDING": (10, 100)}


@pytest.fixture(scope="module")
def solver(bin_dir):
    path = os.path.join(bin_dir, PROG)
    assert os.access(path, os.X_OK), "%s not built (make all)" % path
    return path


@pytest.fixture
def tmp_dir():
    """A private scratch directory (pytest's tmp_path is shared with other
    sessions running at the same time and can race on cleanup)."""
    with tempfile.TemporaryDirectory(prefix="dispatch-solve-") as d:
        yield pathlib.Path(d)


def run(solver, instance=None, args=(), raw=None, timeout=60):
    """(exit status, stdout, stderr) of the solver fed instance (a dict,
    as JSON) or raw bytes on stdin."""
    data = raw if raw is not None else json.dumps(instance).encode()
    r = subprocess.run([solver, *args], input=data, capture_output=True, timeout=timeout)
    return r.returncode, r.stdout.decode(), r.stderr.decode("utf-8", "replace")


def solve(solver, instance):
    rc, out, err = run(solver, instance)
    assert rc == 0, "exit %d: %s" % (rc, err)
    assert err == ""
    return json.loads(out)


# --- the README example -----------------------------------------------------

EXAMPLE = {
    "signal": {"type": "FCR", "power_kw": 50, "duration_min": 15},
    "vehicles": [
        {"vehicle_id": "v1", "soc": 72.5, "max_power_kw": 11, "available": True, "priority": 5,
         "tariff": 0.18, "segment": "commuter", "site": "paris-01", "battery_kwh": 60,
         "avail_prob": 0.9, "degradation": 0.1, "window_h": 3, "participation": 2},
        {"vehicle_id": "v2", "soc": 90, "max_power_kw": 22, "available": True, "priority": 1,
         "tariff": 0.12, "site": "paris-01"},
        {"vehicle_id": "v3", "soc": 55, "max_power_kw": 7.4, "available": True, "priority": 3,
         "tariff": 0.2, "site": "paris-02"},
        {"vehicle_id": "v4", "soc": 15, "max_power_kw": 11, "available": True},
        {"vehicle_id": "v5", "soc": 80, "max_power_kw": 11, "available": False},
        {"vehicle_id": "v6", "soc": 80, "max_power_kw": 0, "available": True},
        {"vehicle_id": "v7", "soc": 64, "max_power_kw": 50, "available": True, "site": "lyon"},
    ],
    "sites": [
        {"site": "paris-01", "limit_kw": 25, "parent": "paris"},
        {"site": "paris-02", "parent": "paris"},
        {"site": "paris", "limit_kw": 30},
    ],
    "config": {"strategy": "smart"},
}


# --- invariants ---------------------------------------------------------------

def site_tree(instance):
    limits, parent = {}, {}
    for s in instance.get("sites", []):
        limits[s["site"]] = s.get("limit_kw")
        parent[s["site"]] = s.get("parent")
    return limits, parent


def deliverable(instance, caps):
    """Most power the candidates can give under the site limits (they form
    a forest): per site, min(limit, own vehicles + children)."""
    limits, parent = site_tree(instance)
    own = {}
    free = 0.0
    for v in instance["vehicles"]:
        c = caps.get(v["vehicle_id"], 0.0)
        s = v.get("site") or ""
        if s:
            own[s] = own.get(s, 0.0) + c
        else:
            free += c
    children = {}
    for s, p in parent.items():
        if p:
            children.setdefault(p, []).append(s)

    def total(s):
        t = own.get(s, 0.0) + sum(total(c) for c in children.get(s, []))
        lim = limits.get(s)
        return t if lim is None else min(t, lim)

    roots = set(own) | set(limits)
    roots = [s for s in roots if not parent.get(s)]
    return free + sum(total(s) for s in roots)


def check_decision(instance, d, strategy=None):
    cfg = instance.get("config", {})
    sig = instance["signal"]
    band = BANDS[sig["type"]]
    low, high = cfg.get("soc_low", band[0]), cfg.get("soc_high", band[1])
    req = sig["power_kw"]
    vs = d["vehicles"]
    assert [v["vehicle_id"] for v in vs] == [v["vehicle_id"] for v in instance["vehicles"]]
    caps = {}
    for src, v in zip(instance["vehicles"], vs):
        reason = (None if src["available"] and src["max_power_kw"] > 0 and low <= src["soc"] <= high
                  else "unavailable" if not src["available"]
                  else "no_power" if src["max_power_kw"] <= 0
                  else "soc_below_band" if src["soc"] < low else "soc_above_band")
        if reason is None:
            assert v["eligible"] is True, v
            assert "reason" not in v
            assert 0 <= v["capacity_kw"] <= src["max_power_kw"] * (1 + EPS) + EPS, v
            assert v["power_kw"] >= 0
            assert v["power_kw"] <= v["capacity_kw"] * (1 + EPS) + EPS, v
            caps[v["vehicle_id"]] = v["capacity_kw"]
        else:
            assert v == {"vehicle_id": src["vehicle_id"], "power_kw": 0, "eligible": False,
                         "reason": reason}, (src, v)
    total = sum(v["power_kw"] for v in vs)
    assert abs(total - d["allocated_kw"]) <= EPS * max(1, total)
    assert d["allocated_kw"] <= req * (1 + EPS) + EPS
    assert d["request_kw"] == req
    obj = sum(v["score"] * v["power_kw"] for v in vs if v["eligible"])
    assert abs(obj - d["objective"]) <= 1e-5 * max(1, abs(obj)), (obj, d["objective"])
    # site limits, nested
    limits, parent = site_tree(instance)
    load = {}
    for src, v in zip(instance["vehicles"], vs):
        s = src.get("site") or ""
        while s:
            load[s] = load.get(s, 0.0) + v["power_kw"]
            s = parent.get(s) or ""
    for s, lim in limits.items():
        if lim is not None:
            assert load.get(s, 0.0) <= lim * (1 + EPS) + EPS, (s, load.get(s), lim)
    # the request is met whenever the fleet (and the limits) allow
    can = min(req, deliverable(instance, caps))
    assert d["allocated_kw"] >= can * (1 - EPS) - EPS, (strategy, d["allocated_kw"], can)
    # status
    if d["allocated_kw"] >= req * (1 - 1e-9) - 1e-9:
        assert d["status"] == "complete" and d["shortfall_kw"] == 0
    else:
        assert d["status"] == ("partial" if d["allocated_kw"] > 1e-9 else "infeasible")
        assert abs(d["shortfall_kw"] - (req - d["allocated_kw"])) <= EPS * max(1, req)
    assert d["solve_ms"] >= 0
    return caps


def random_instance(rng, n, nsites=0, strategy="smart", limits=True):
    sites = []
    names = ["s%d" % i for i in range(nsites)]
    for i, s in enumerate(names):
        e = {"site": s}
        if limits and rng.random() < 0.8:
            e["limit_kw"] = round(rng.uniform(0, 60), 2)
        if i > 0 and rng.random() < 0.5:
            e["parent"] = names[rng.randrange(i)]   # a parent listed earlier: a forest
        sites.append(e)
    vehicles = []
    for i in range(n):
        v = {"vehicle_id": "ev-%04d" % i,
             "soc": round(rng.uniform(0, 100), 1),
             "max_power_kw": rng.choice([0, 3.7, 7.4, 11, 22, 50]),
             "available": rng.random() < 0.85,
             "priority": rng.randrange(0, 10),
             "tariff": round(rng.uniform(0.05, 0.4), 3)}
        if rng.random() < 0.5:
            v["battery_kwh"] = rng.choice([20, 40, 60, 80])
        if rng.random() < 0.5:
            v["avail_prob"] = round(rng.random(), 3)
            v["degradation"] = round(rng.uniform(0, 0.3), 3)
            v["window_h"] = round(rng.uniform(0, 24), 1)
            v["participation"] = rng.randrange(0, 5)
        if names and rng.random() < 0.8:
            v["site"] = rng.choice(names)
        v["segment"] = rng.choice(["commuter", "fleet", "default"])
        vehicles.append(v)
    inst = {"signal": {"type": rng.choice(list(BANDS)), "power_kw": round(rng.uniform(1, 8 * max(n, 1)), 1),
                       "duration_min": rng.choice([5, 15, 60, 240])},
            "vehicles": vehicles,
            "config": {"strategy": strategy}}
    if sites:
        inst["sites"] = sites
    return inst


# --- behaviour --------------------------------------------------------------

def test_help_documents_the_format(solver):
    rc, out, err = run(solver, args=["--help"])
    assert rc == 0 and err == ""
    for word in ["signal", "vehicles", "vehicle_id", "sites", "limit_kw", "parent", "strategy",
                 "lp_fallback", "segments", "dispatcher", "objective", "solve_ms",
                 "soc_below_band", "Exit status"]:
        assert word in out, word


def test_example_decision(solver):
    d = solve(solver, EXAMPLE)
    check_decision(EXAMPLE, d)
    assert d["dispatcher"] == "smart"
    assert d["status"] == "complete"
    assert d["allocated_kw"] == pytest.approx(50)
    by = {v["vehicle_id"]: v for v in d["vehicles"]}
    assert by["v4"]["reason"] == "soc_below_band"
    assert by["v5"]["reason"] == "unavailable"
    assert by["v6"]["reason"] == "no_power"
    # EffectiveCapacity: 11 kW x 0.9 available x (1 - 0.1) worn
    assert by["v1"]["capacity_kw"] == pytest.approx(11 * 0.9 * 0.9, rel=1e-5)
    assert by["v2"]["capacity_kw"] == pytest.approx(22)
    # paris (30 kW) holds paris-01 (25 kW) and paris-02
    assert by["v1"]["power_kw"] + by["v2"]["power_kw"] + by["v3"]["power_kw"] <= 30 + EPS


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_names_itself(solver, strategy):
    inst = json.loads(json.dumps(EXAMPLE))
    inst["config"] = {"strategy": strategy}
    d = solve(solver, inst)
    check_decision(inst, d, strategy)
    assert d["dispatcher"] == strategy
    assert ("lp_status" in d) == (strategy == "lp")


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_random_fleets_hold_the_invariants(solver, strategy):
    rng = random.Random(1000 + STRATEGIES.index(strategy))
    for k in range(120):
        inst = random_instance(rng, rng.randrange(0, 40), nsites=rng.randrange(0, 6),
                               strategy=strategy)
        d = solve(solver, inst)
        check_decision(inst, d, strategy)
        # deterministic: the same input gives the same decision
        d2 = solve(solver, inst)
        d.pop("solve_ms")
        d2.pop("solve_ms")
        assert d == d2


def glpsol_objective(inst, d, tmp_dir):
    """Optimum of the LP (max sum score*kw, sum kw = request, kw <= cap,
    nested site limits) by glpsol, from the scores and capacities the
    solver reported."""
    limits, parent = site_tree(inst)
    el = [(src, v) for src, v in zip(inst["vehicles"], d["vehicles"]) if v["eligible"]]
    lines = ["Maximize", " obj: " + (" + ".join("%.17g x%d" % (v["score"], i)
                                               for i, (_, v) in enumerate(el)) or "0 x0"),
             "Subject To", " req: " + (" + ".join("x%d" % i for i in range(len(el))) or "0 x0")
             + " = %.17g" % inst["signal"]["power_kw"]]
    for s, lim in limits.items():
        if lim is None:
            continue
        members = []
        for i, (src, _) in enumerate(el):
            t = src.get("site") or ""
            while t and t != s:
                t = parent.get(t) or ""
            if t == s:
                members.append("x%d" % i)
        if members:
            lines.append(" site_%s: %s <= %.17g" % (s, " + ".join(members), lim))
    lines.append("Bounds")
    for i, (_, v) in enumerate(el):
        lines.append(" 0 <= x%d <= %.17g" % (i, v["capacity_kw"]))
    if not el:
        lines.append(" x0 = 0")
    lines.append("End")
    lp = tmp_dir / "inst.lp"
    out = tmp_dir / "inst.out"
    lp.write_text("\n".join(lines) + "\n")
    r = subprocess.run(["glpsol", "--lp", str(lp), "-o", str(out)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    text = out.read_text()
    st = re.search(r"Status:\s+(\S+)", text)
    if not st or st.group(1) != "OPTIMAL":
        return None
    m = re.search(r"Objective:\s+obj = ([-+0-9.eE]+)", text)
    return float(m.group(1))


def test_lp_objective_equals_glpsol(solver, tmp_dir):
    rng = random.Random(77)
    checked = 0
    for k in range(40):
        inst = random_instance(rng, rng.randrange(1, 30), nsites=rng.randrange(0, 5),
                               strategy="lp")
        d = solve(solver, inst)
        check_decision(inst, d, "lp")
        if d["status"] != "complete":
            continue
        assert d["lp_status"] == "optimal"
        ref = glpsol_objective(inst, d, tmp_dir)
        assert ref is not None, "glpsol found %s infeasible, the solver did not" % inst
        assert d["objective"] == pytest.approx(ref, rel=1e-6, abs=1e-6)
        checked += 1
    assert checked >= 10   # enough feasible instances to mean something


def test_partial_and_infeasible(solver):
    inst = json.loads(json.dumps(EXAMPLE))
    inst["signal"]["power_kw"] = 500
    d = solve(solver, inst)
    check_decision(inst, d)
    assert d["status"] == "partial"
    assert d["shortfall_kw"] == pytest.approx(500 - d["allocated_kw"])
    inst["vehicles"] = [v for v in inst["vehicles"] if v["vehicle_id"] in ("v4", "v5", "v6")]
    d = solve(solver, inst)
    assert d["status"] == "infeasible"
    assert d["allocated_kw"] == 0 and d["shortfall_kw"] == 500
    inst["vehicles"] = []
    d = solve(solver, inst)
    assert d["status"] == "infeasible" and d["vehicles"] == []


@pytest.mark.parametrize("fallback,decided", [(True, "smart"), (False, "lp")])
def test_lp_first_fallback(solver, fallback, decided):
    inst = json.loads(json.dumps(EXAMPLE))
    inst["signal"]["power_kw"] = 500   # more than the fleet: the LP is infeasible
    inst["config"] = {"strategy": "lp", "lp_fallback": fallback}
    d = solve(solver, inst)
    check_decision(inst, d)
    assert d["lp_status"] == "infeasible"
    assert d["dispatcher"] == decided


def test_file_stdin_and_dash_agree(solver, tmp_dir):
    f = tmp_dir / "inst.json"
    f.write_text(json.dumps(EXAMPLE))
    outs = []
    for args, data in [([str(f)], b""), (["-"], json.dumps(EXAMPLE).encode()),
                       ([], json.dumps(EXAMPLE).encode())]:
        rc, out, err = run(solver, args=args, raw=data)
        assert rc == 0, err
        d = json.loads(out)
        d.pop("solve_ms")
        outs.append(d)
    assert outs[0] == outs[1] == outs[2]


def test_signal_types_and_default_bands(solver):
    base = {"signal": {"type": "FCR", "power_kw": 5},
            "vehicles": [{"vehicle_id": "a", "soc": 15, "max_power_kw": 7, "available": True},
                         {"vehicle_id": "b", "soc": 5, "max_power_kw": 7, "available": True}]}
    for t, a_ok in [("FCR", False), ("PRIMARY_RESERVE", False), ("fcr", False), (0, False),
                    ("AFRR", False), ("SECONDARY_RESERVE", False), (1, False),
                    ("LOAD_SHEDDING", True), (2, True)]:
        base["signal"]["type"] = t
        d = solve(solver, base)
        assert d["vehicles"][0]["eligible"] is a_ok, t
        assert d["vehicles"][1]["reason"] == "soc_below_band", t


def test_band_from_config(solver):
    inst = {"signal": {"type": "FCR", "power_kw": 5},
            "vehicles": [{"vehicle_id": "lo", "soc": 25, "max_power_kw": 7, "available": True},
                         {"vehicle_id": "mid", "soc": 50, "max_power_kw": 7, "available": True},
                         {"vehicle_id": "hi", "soc": 95, "max_power_kw": 7, "available": True}],
            "config": {"soc_low": 30, "soc_high": 90}}
    d = solve(solver, inst)
    check_decision(inst, d)
    assert [v.get("reason") for v in d["vehicles"]] == ["soc_below_band", None, "soc_above_band"]
    # the band's edges are inside it
    inst["config"] = {"soc_low": 25, "soc_high": 95}
    assert all(v["eligible"] for v in solve(solver, inst)["vehicles"])


def test_capacity_energy_limit_and_min_soc(solver):
    # 10 kWh battery at 30 %, floor 20 %: 1 kWh over 1 h -> 1 kW of 11
    inst = {"signal": {"type": "FCR", "power_kw": 20, "duration_min": 60},
            "vehicles": [{"vehicle_id": "small", "soc": 30, "max_power_kw": 11,
                          "available": True, "battery_kwh": 10}],
            "config": {"min_soc": 20}}
    d = solve(solver, inst)
    assert d["vehicles"][0]["capacity_kw"] == pytest.approx(1.0, rel=1e-5)
    assert d["allocated_kw"] == pytest.approx(1.0, rel=1e-5)
    # min_soc defaults to the band's low (FCR: 20)
    del inst["config"]
    assert solve(solver, inst)["vehicles"][0]["capacity_kw"] == pytest.approx(1.0, rel=1e-5)
    inst["config"] = {"min_soc": 25}
    assert solve(solver, inst)["vehicles"][0]["capacity_kw"] == pytest.approx(0.5, rel=1e-5)
    # forecasts scale it: 11 kW x 0.5 x (1 - 0.2)
    inst = {"signal": {"type": "FCR", "power_kw": 20},
            "vehicles": [{"vehicle_id": "f", "soc": 80, "max_power_kw": 11, "available": True,
                          "avail_prob": 0.5, "degradation": 0.2}]}
    assert solve(solver, inst)["vehicles"][0]["capacity_kw"] == pytest.approx(4.4, rel=1e-5)


def test_weights_steer_the_choice(solver):
    vehicles = [{"vehicle_id": "cheap", "soc": 40, "max_power_kw": 10, "available": True,
                 "tariff": 0.05, "priority": 1},
                {"vehicle_id": "full", "soc": 95, "max_power_kw": 10, "available": True,
                 "tariff": 0.30, "priority": 1}]
    zero = {k: 0 for k in ["soc", "time", "priority", "price", "availability", "wear",
                           "participation"]}
    for strategy in ["smart", "lp"]:
        for feature, winner in [("price", "cheap"), ("soc", "full")]:
            w = dict(zero, **{feature: 1})
            inst = {"signal": {"type": "FCR", "power_kw": 10}, "vehicles": vehicles,
                    "config": {"strategy": strategy, "weights": w}}
            d = solve(solver, inst)
            check_decision(inst, d)
            by = {v["vehicle_id"]: v for v in d["vehicles"]}
            assert by[winner]["power_kw"] == pytest.approx(10), (strategy, feature, d)


def test_segments(solver):
    inst = json.loads(json.dumps(EXAMPLE))
    inst["config"] = {"strategy": "smart",
                      "segments": {"commuter": {"dispatcher_type": "lp", "fallback": True,
                                                "weights": {"soc": 1}},
                                   "unused": {}}}
    d = solve(solver, inst)
    check_decision(inst, d)
    assert d["status"] == "complete"
    # a segment's weights are its own: v1 alone in "commuter", its SoC
    # is the segment's constant feature -> score 0
    by = {v["vehicle_id"]: v for v in d["vehicles"]}
    assert by["v1"]["score"] == 0


# --- bad input ---------------------------------------------------------------

def with_(path, value):
    """EXAMPLE with the member at path (a tuple of keys/indexes) set to
    value, or deleted when value is DELETE."""
    inst = json.loads(json.dumps(EXAMPLE))
    o = inst
    for k in path[:-1]:
        o = o[k]
    if value is DELETE:
        del o[path[-1]]
    else:
        o[path[-1]] = value
    return json.dumps(inst).encode()


DELETE = object()
CYCLE_SITES = [{"site": "a", "parent": "c"}, {"site": "b", "parent": "a"},
               {"site": "c", "parent": "b"}]

BAD = [
    ("empty", b"", "input: empty"),
    ("not json", b"dispatch please", "input: not valid JSON"),
    ("truncated", json.dumps(EXAMPLE).encode()[:-7], "input: not valid JSON"),
    ("array", b"[1, 2]", "input: must be a JSON object"),
    ("string", b'"hello"', "input: not valid JSON"),
    ("deep", b"[" * 100000 + b"]" * 100000, "input: not valid JSON"),
    ("deep in vehicle", with_(("vehicles", 0, "soc"), json.loads("[" * 30 + "]" * 30)),
     "input: not valid JSON"),
    ("duplicate key", b'{"signal": {}, "signal": {}}', "input: not valid JSON"),
    ("nan", b'{"signal": {"type": "FCR", "power_kw": NaN}, "vehicles": []}',
     "input: not valid JSON"),
    ("overflow", b'{"signal": {"type": "FCR", "power_kw": 1e999}, "vehicles": []}',
     "input: not valid JSON"),
    ("nul byte", b'{"signal": {"type": "FC\\u0000R", "power_kw": 5}, "vehicles": []}',
     "input: not valid JSON"),
    ("control char", b'{"signal": {"type": "F\nCR", "power_kw": 5}, "vehicles": []}',
     "input: not valid JSON"),
    ("unknown top key", with_(("fleet",), []), "input: unknown key \"fleet\""),
    ("missing signal", with_(("signal",), DELETE), "signal: required"),
    ("null signal", with_(("signal",), None), "signal: required"),
    ("signal not object", with_(("signal",), [1]), "signal: must be an object"),
    ("missing type", with_(("signal", "type"), DELETE), "signal.type: required"),
    ("unknown type", with_(("signal", "type"), "TURBO"), "signal.type: unknown signal type"),
    ("type index", with_(("signal", "type"), 3), "signal.type: must be 0"),
    ("type bool", with_(("signal", "type"), True), "signal.type: must be"),
    ("missing power", with_(("signal", "power_kw"), DELETE), "signal.power_kw: required"),
    ("negative power", with_(("signal", "power_kw"), -50), "signal.power_kw: must be a number > 0"),
    ("zero power", with_(("signal", "power_kw"), 0), "signal.power_kw: must be a number > 0"),
    ("string power", with_(("signal", "power_kw"), "50"), "signal.power_kw: must be a number"),
    ("huge power", with_(("signal", "power_kw"), 1e12), "signal.power_kw: must be a number > 0"),
    ("zero duration", with_(("signal", "duration_min"), 0), "signal.duration_min: must be"),
    ("missing vehicles", with_(("vehicles",), DELETE), "vehicles: required"),
    ("vehicles object", with_(("vehicles",), {"v1": {}}), "vehicles: must be an array"),
    ("vehicle not object", with_(("vehicles", 2), 7), "vehicles[2]: must be an object"),
    ("missing id", with_(("vehicles", 1, "vehicle_id"), DELETE), "vehicles[1].vehicle_id: required"),
    ("numeric id", with_(("vehicles", 1, "vehicle_id"), 12), "vehicles[1].vehicle_id: must be a string"),
    ("empty id", with_(("vehicles", 1, "vehicle_id"), ""), "vehicles[1].vehicle_id: must be 1 to 64"),
    ("long id", with_(("vehicles", 1, "vehicle_id"), "x" * 65), "vehicles[1].vehicle_id: must be 1 to 64"),
    ("odd id", with_(("vehicles", 1, "vehicle_id"), "v 1/\u00e9"), "vehicles[1].vehicle_id: must be 1 to 64"),
    ("duplicate id", with_(("vehicles", 3, "vehicle_id"), "v1"),
     "vehicles[3].vehicle_id: duplicate \"v1\" (also vehicles[0])"),
    ("soc high", with_(("vehicles", 3, "soc"), 100.5), "vehicles[3].soc: must be a number between 0 and 100"),
    ("soc negative", with_(("vehicles", 3, "soc"), -1), "vehicles[3].soc: must be a number between 0 and 100"),
    ("soc string", with_(("vehicles", 3, "soc"), "72"), "vehicles[3].soc: must be a number"),
    ("soc missing", with_(("vehicles", 3, "soc"), DELETE), "vehicles[3].soc: required"),
    ("negative max power", with_(("vehicles", 0, "max_power_kw"), -11),
     "vehicles[0].max_power_kw: must be a number between 0 and 1000"),
    ("available string", with_(("vehicles", 0, "available"), "yes"),
     "vehicles[0].available: must be true or false"),
    ("available missing", with_(("vehicles", 0, "available"), DELETE), "vehicles[0].available: required"),
    ("priority fraction", with_(("vehicles", 0, "priority"), 1.5), "vehicles[0].priority: must be an integer"),
    ("priority huge", with_(("vehicles", 0, "priority"), 2 ** 40), "vehicles[0].priority: must be an integer"),
    ("tariff string", with_(("vehicles", 0, "tariff"), "cheap"), "vehicles[0].tariff: must be a number"),
    ("segment number", with_(("vehicles", 0, "segment"), 3), "vehicles[0].segment: must be a string"),
    ("site object", with_(("vehicles", 0, "site"), {}), "vehicles[0].site: must be a string"),
    ("site long", with_(("vehicles", 0, "site"), "s" * 200), "vehicles[0].site: longer than"),
    ("battery negative", with_(("vehicles", 0, "battery_kwh"), -60), "vehicles[0].battery_kwh: must be"),
    ("avail_prob > 1", with_(("vehicles", 0, "avail_prob"), 1.5), "vehicles[0].avail_prob: must be a number between 0 and 1"),
    ("degradation < 0", with_(("vehicles", 0, "degradation"), -0.1), "vehicles[0].degradation: must be"),
    ("window negative", with_(("vehicles", 0, "window_h"), -3), "vehicles[0].window_h: must be"),
    ("participation string", with_(("vehicles", 0, "participation"), "2"), "vehicles[0].participation: must be"),
    ("ts number", with_(("vehicles", 0, "ts"), 12), "vehicles[0].ts: must be an RFC 3339 string"),
    ("sites object", with_(("sites",), {"a": 1}), "sites: must be an array"),
    ("site entry string", with_(("sites", 1), "paris-02"), "sites[1]: must be an object"),
    ("site name missing", with_(("sites", 1, "site"), DELETE), "sites[1].site: required"),
    ("site name empty", with_(("sites", 1, "site"), ""), "sites[1].site: must not be empty"),
    ("site unknown key", with_(("sites", 1, "limit"), 3), "sites[1]: unknown key \"limit\""),
    ("negative limit", with_(("sites", 2, "limit_kw"), -1), "sites[2].limit_kw: must be a number between 0"),
    ("string limit", with_(("sites", 2, "limit_kw"), "100"), "sites[2].limit_kw: must be a number"),
    ("duplicate site", with_(("sites", 1, "site"), "paris-01"), "sites[1].site: duplicate site \"paris-01\""),
    ("unknown parent", with_(("sites", 0, "parent"), "france"), "sites[0].parent: unknown site \"france\""),
    ("own parent", with_(("sites", 2, "parent"), "paris"), "sites[2].parent: a site cannot be its own parent"),
    ("cycle", with_(("sites",), CYCLE_SITES), "sites[0].parent: cycle through site \"a\""),
    ("config array", with_(("config",), []), "config: must be an object"),
    ("unknown config key", with_(("config", "strategie"), "lp"), "config: unknown key \"strategie\""),
    ("unknown strategy", with_(("config", "strategy"), "genetic"), "config.strategy: must be smart, equal, lp or priority"),
    ("strategy number", with_(("config", "strategy"), 2), "config.strategy: must be a string"),
    ("lp_fallback string", with_(("config", "lp_fallback"), "true"), "config.lp_fallback: must be true or false"),
    ("max_rounds zero", with_(("config", "max_rounds"), 0), "config.max_rounds: must be an integer between 1"),
    ("min_soc high", with_(("config", "min_soc"), 120), "config.min_soc: must be a number between 0 and 100"),
    ("band inverted", with_(("config", "soc_low"), 100), "config.soc_low: must be below soc_high"),
    ("band high", with_(("config", "soc_high"), 101), "config.soc_high: must be a number between 0 and 100"),
    ("weights array", with_(("config", "weights"), [1]), "config.weights: must be an object"),
    ("unknown weight", with_(("config", "weights"), {"luck": 1}), "config.weights.luck: unknown weight"),
    ("negative weight", with_(("config", "weights"), {"soc": -0.1}), "config.weights.soc: must be a number between 0 and 1000"),
    ("segments array", with_(("config", "segments"), []), "config.segments: must be an object"),
    ("segment type", with_(("config", "segments"), {"commuter": {"dispatcher_type": "genetic"}}),
     "config.segments.commuter.dispatcher_type: must be heuristic or lp"),
    ("segment key", with_(("config", "segments"), {"commuter": {"type": "lp"}}),
     "config.segments.commuter: unknown key \"type\""),
    ("segment fallback", with_(("config", "segments"), {"commuter": {"fallback": 1}}),
     "config.segments.commuter.fallback: must be true or false"),
    ("segment weight", with_(("config", "segments"), {"commuter": {"weights": {"soc": "1"}}}),
     "config.segments.commuter.weights.soc: must be a number"),
    ("segment not object", with_(("config", "segments"), {"commuter": "lp"}),
     "config.segments.commuter: must be an object"),
]


def assert_refused(rc, out, err, expect=None):
    assert rc == 2, "exit %d (stdout %r, stderr %r)" % (rc, out[:200], err[:300])
    assert out == ""
    assert err.endswith("\n") and err.count("\n") == 1, "not one line: %r" % err
    assert err.startswith(PROG + ": "), err
    if expect is not None:
        assert err[len(PROG) + 2:].startswith(expect), err


@pytest.mark.parametrize("name,data,expect", BAD, ids=[b[0] for b in BAD])
def test_bad_input_refused_naming_the_field(solver, name, data, expect):
    rc, out, err = run(solver, raw=data)
    assert_refused(rc, out, err, expect)


def test_usage_errors(solver, tmp_dir):
    rc, out, err = run(solver, args=[str(tmp_dir / "missing.json")], raw=b"")
    assert_refused(rc, out, err)
    assert "missing.json" in err
    rc, out, err = run(solver, args=["--fast"], raw=b"")
    assert_refused(rc, out, err, "unknown option --fast")
    rc, out, err = run(solver, args=["a.json", "b.json"], raw=b"")
    assert_refused(rc, out, err)
    rc, out, err = run(solver, args=[str(tmp_dir)], raw=b"")   # a directory
    assert rc in (1, 2) and err.count("\n") == 1


def mutate(rng, inst):
    """One random change of a valid instance: a leaf replaced by a value of
    another type or range, a key deleted or added, an entry duplicated."""
    inst = json.loads(json.dumps(inst))
    nodes = []

    def walk(o, path):
        if isinstance(o, dict):
            for k, v in o.items():
                nodes.append((o, k))
                walk(v, path + [k])
        elif isinstance(o, list):
            for i, v in enumerate(o):
                nodes.append((o, i))
                walk(v, path + [i])
    walk(inst, [])
    weird = [None, True, False, 0, -1, -1e300, 1e300, 2 ** 63 - 1, -(2 ** 63), 0.5, "", "x",
             "FCR", "lp", "paris", "v1", "\u00e9\u202e", "a" * 300, [], [1, "a"], {}, {"a": None},
             101, 1e-320, 65535, 65536]
    op = rng.randrange(4)
    parent, key = rng.choice(nodes)
    if op == 0:
        parent[key] = rng.choice(weird)
    elif op == 1:
        del parent[key]
    elif op == 2 and isinstance(parent, dict):
        parent[rng.choice(["zz", "site", "parent", "limit_kw", "weights", "soc", "type"])] = \
            rng.choice(weird)
    elif isinstance(parent, list):
        parent.append(json.loads(json.dumps(parent[key])))
    else:
        parent[key] = rng.choice(weird)
    return inst


def test_mutated_instances_never_crash(solver):
    """Thousands of random mutations: every run exits 0 with a decision that
    holds the invariants, or 2 with one line; never a crash (a signal)."""
    rng = random.Random(4242)
    counts = {0: 0, 2: 0}
    base = [EXAMPLE] + [random_instance(rng, rng.randrange(1, 12), nsites=rng.randrange(0, 4),
                                        strategy=s) for s in STRATEGIES]
    for k in range(1500):
        inst = rng.choice(base)
        for _ in range(rng.randrange(1, 4)):
            inst = mutate(rng, inst)
        data = json.dumps(inst).encode()
        if rng.random() < 0.15:   # byte-level damage too
            data = bytearray(data)
            for _ in range(rng.randrange(1, 4)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            data = bytes(data)
        rc, out, err = run(solver, raw=data)
        assert rc in (0, 2), "exit %d on %r: %s" % (rc, data[:500], err)
        counts[rc] += 1
        if rc == 2:
            assert_refused(rc, out, err)
        else:
            d = json.loads(out)
            assert d["status"] in ("complete", "partial", "infeasible")
            assert d["allocated_kw"] <= d["request_kw"] * (1 + EPS) + EPS
            assert all(v["power_kw"] <= v.get("capacity_kw", 0) * (1 + EPS) + EPS
                       for v in d["vehicles"])
    print("mutations: %d decided, %d refused" % (counts[0], counts[2]))
    assert counts[0] > 50 and counts[2] > 500, counts


def test_fleet_of_twenty_thousand(solver):
    rng = random.Random(9)
    inst = random_instance(rng, 20000, nsites=50, strategy="smart")
    inst["signal"]["power_kw"] = 20000.0
    for strategy in ["smart", "lp", "equal"]:
        inst["config"] = {"strategy": strategy}
        d = solve(solver, inst)
        check_decision(inst, d, strategy)
        assert len(d["vehicles"]) == 20000

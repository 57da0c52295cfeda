"""bench/RESULTS.md's section 3 and its target row: the agent's per-call floor at N = 1 against
the shell agent (agents.py measures it), where that time goes, and the agent's import profile."""
from __future__ import annotations

from fmt import fmt_ms


def floor_target_ratios(r: dict) -> list[float]:
    """ours / the shell agent's, for the target row: meta-data, and the classic monitor (the
    call-by-call interleaved figure when there is one, else ra_bench.sh's)."""
    fl = r.get("floor", {})
    cl, cu = r.get("classic", {}), r.get("classic_up", {})
    ratios = []
    if fl:
        ratios.append(fl["meta_ours"] / fl["meta_up"])
    if fl.get("mon_ours") and fl.get("mon_up"):   # call by call, interleaved: the side-by-side figure
        ratios.append(fl["mon_ours"] / fl["mon_up"])
    elif cl and cu:
        ratios.append(cl["mon_one_ms"] / cu["mon_one_ms"])
    return ratios


def floor_section(w, r: dict, reps: int, t_floor: bool | None) -> None:
    """Section 3 from this run's figures: `reps` the run's repetitions, `t_floor` whether the
    1.5× target was met (None: not measured)."""
    fl = r.get("floor", {})
    cl, cu = r.get("classic", {}), r.get("classic_up", {})
    w("## 3. Per-call floor (N = 1)")
    w("")
    w("| call | ganesha-ha | shell agent | ratio (ours / shell) |")
    w("|---|---:|---:|---:|")
    if fl:
        w(f"| `meta-data` | {fmt_ms(fl['meta_ours'])} | {fmt_ms(fl['meta_up'])} | "
          f"{fl['meta_ours'] / fl['meta_up']:.2f}× |")
        w(f"| `meta-data` through the in-tree `ra/exports` (sh wrapper) | {fmt_ms(fl['meta_ra_exports'])} | "
          f"{fmt_ms(fl['meta_up'])} | {fl['meta_ra_exports'] / fl['meta_up']:.2f}× |")
    if fl.get("mon_ours") and fl.get("mon_up"):
        w(f"| classic-mode `monitor` of one export, call by call interleaved with the shell agent's "
          f"(median of {r.get('floor_reps', 'n/a')}) | {fmt_ms(fl['mon_ours'])} | {fmt_ms(fl['mon_up'])} | "
          f"{fl['mon_ours'] / fl['mon_up']:.2f}× |")
    cpu = r.get("floor_cpu", {})
    for key, what in (("meta", "`meta-data`"), ("mon", "classic-mode `monitor`")):
        if cpu.get(f"{key}_ours") and cpu.get(f"{key}_up"):
            w(f"| CPU time of {what} (user + system, children included; mean of the same calls) | "
              f"{fmt_ms(cpu[f'{key}_ours'])} | {fmt_ms(cpu[f'{key}_up'])} | "
              f"{cpu[f'{key}_ours'] / cpu[f'{key}_up']:.2f}× |")
    if cl and cu:
        w(f"| classic-mode `monitor` of one export (ra_bench.sh: median of {reps} runs "
          f"× {reps} monitors) | {fmt_ms(cl['mon_one_ms'] / 1000)} | "
          f"{fmt_ms(cu['mon_one_ms'] / 1000)} | {cl['mon_one_ms'] / cu['mon_one_ms']:.2f}× |")
        w(f"| classic-mode `start` of one export | {fmt_ms(cl['start_all_s'])} | "
          f"{fmt_ms(cu['start_all_s'])} | {cl['start_all_s'] / cu['start_all_s']:.2f}× |")
        w(f"| classic-mode `stop` of one export | {fmt_ms(cl['stop_all_s'])} | "
          f"{fmt_ms(cu['stop_all_s'])} | {cl['stop_all_s'] / cu['stop_all_s']:.2f}× |")
    if fl:
        w(f"| (floor: `python -IS -c pass` / `sh -c :`) | {fmt_ms(fl['python_bare'])} | "
          f"{fmt_ms(fl['sh_bare'])} | |")
        w(f"| (`python -I -c pass`: with `site`, as the agent ran before) | {fmt_ms(fl['python_site'])} | | |")
        w(f"| (one `exportfs` run, no arguments) | {fmt_ms(fl['exportfs'])} | | |")
    w("")
    w("Our agent is timed as Pacemaker runs it, everywhere in this report: the file "
      "`ganesha-ha install-agent` writes (installed under a private OCF root): a `/bin/sh` script "
      "that execs the venv's `python -IS` (one shell start, so that a moved or removed venv still "
      "answers OCF_ERR_INSTALLED with a reason), as the in-tree `ra/exports` does. meta-data and a "
      "classic-mode monitor of one export (each agent its own export, started once) are timed call by "
      "call, interleaved with the shell agent's: the target reads that monitor ratio; the ra_bench.sh "
      "rows come from alternating runs of the script for each agent, more exposed to the load of the "
      "moment.")
    w("")
    prof = r.get("imports", {})
    if t_floor is False or r.get("monitor_steps"):
        floor_obstacles(w, fl, cl, cu, prof, r.get("monitor_steps", []), t_floor, r.get("floor_cpu"))
    import_table(w, prof)


def floor_obstacles(w, fl: dict, cl: dict, cu: dict, prof: dict, steps: list, met_: bool | None = None,
                    cpu: dict | None = None) -> None:
    """Where the per-call time goes, from this run's figures: what stands between the floor
    and 1.5× the shell agent when the target is not met, and the costs that remain either way."""
    w("### What stands in the way of 1.5×" if met_ is False else "### Where the per-call time goes")
    w("")
    if fl:
        w(f"- **The interpreter.** `python -IS -c pass` alone takes {fmt_ms(fl['python_bare'])}, "
          f"{fl['python_bare'] / fl['meta_up']:.2f}× the shell agent's whole `meta-data` "
          f"({fmt_ms(fl['meta_up'])}); `sh -c :` takes {fmt_ms(fl['sh_bare'])}. So our meta-data "
          f"({fmt_ms(fl['meta_ours'])}) starts no Python: the agent file prints the document ocf.py "
          "renders, kept in ganesha_ha/data/exports.xml (install.py; tests/unit/test_metadata.py holds "
          "them equal).")
    mon = prof.get("agent monitor (knfsd classic, N=1)")
    ours = theirs = None
    if fl.get("mon_ours") and fl.get("mon_up"):
        ours, theirs = fl["mon_ours"], fl["mon_up"]
    elif cl and cu:
        ours, theirs = cl["mon_one_ms"] / 1000, cu["mon_one_ms"] / 1000
    if ours is not None:
        text = (f"- **The monitor** ({fmt_ms(ours)} vs {fmt_ms(theirs)}; 1.5× would be "
                f"{fmt_ms(1.5 * theirs)}), taken apart in the table below.")
        if cpu and cpu.get("mon_up"):
            text += (f" In CPU time, which waiting for a CPU on a loaded machine does not inflate: "
                     f"{fmt_ms(cpu['mon_ours'])} vs {fmt_ms(cpu['mon_up'])} "
                     f"({cpu['mon_ours'] / cpu['mon_up']:.2f}×).")
        text += (" Besides the interpreter: the standard library the package is written with, the "
                 "package's own modules (tests/server/test_agent_imports.py pins which), the installed "
                 "agent's `/bin/sh` wrapper (it answers OCF_ERR_INSTALLED when the interpreter is gone, "
                 "install.py), and the check of the export itself: one exportfs run, through posix_spawn, "
                 "that proves exportfs can still drive the server (tests/server/test_faults.py holds the "
                 "monitor to failing when exportfs fails; the shell agent runs `exportfs -v` once too), "
                 "and reads of the registry, etab and rmtab.")
        if mon:
            gone = [m for m in ("site", "dataclasses", "typing", "uuid", "configobj", "subprocess", "shutil",
                                "bz2", "lzma", "struct") if m not in mon[0]]
            text += f" Not loaded any more: {', '.join(gone)}." if gone else ""
        text += (" The launcher ends with os._exit (no teardown of the modules), the package's regular "
                 "expressions compile at their first use (textcheck.LazyPattern). What remains cannot go "
                 "without a resident process, another language, or rewriting the model: the interpreter, "
                 "re and json (the registry's format; json needs re), ipaddress and pathlib (the model's "
                 "client addresses and file paths), and the package's modules, each step named below.")
        w(text)
    if steps:
        w("")
        w("A classic monitor taken apart (wall: medians of interleaved runs; CPU: user + system time, "
          "children included, means; each step includes the ones above):")
        w("")
        w("| step | wall | adds | CPU | adds |")
        w("|---|---:|---:|---:|---:|")
        prev = None
        for step in steps:
            label, t = step[0], step[1]
            c = step[2] if len(step) > 2 else None
            dt = "" if prev is None else f"+{(t - prev[0]) * 1000:.1f} ms"
            dc = "" if prev is None or c is None or prev[1] is None else f"+{(c - prev[1]) * 1000:.1f} ms"
            w(f"| {label} | {fmt_ms(t)} | {dt} | {'n/a' if c is None else fmt_ms(c)} | {dc} |")
            prev = (t, c)
    w("")


INTERPRETER = {"site", "encodings", "encodings.utf_8", "io", "abc", "codecs", "zipimport", "runpy",
               "_frozen_importlib_external", "_io", "marshal", "posix", "time", "_codecs", "_thread",
               "_warnings", "_weakref", "_imp", "_signal", "winreg", "encodings.aliases"}


def import_table(w, prof: dict) -> None:
    """The agent's imports per action (agents.py's `-X importtime` profile): what costs most,
    and which ganesha_ha modules it loads."""
    if not prof:
        return
    w("### Import time (`python -X importtime -IS -c <what the installed agent execs> ACTION`, median of 5)")
    w("")
    w("Top costs: cumulative ms of each import made by `site` (interpreter start-up, .pth "
      "files) or by a ganesha_ha module, with the importer in brackets. `-X importtime` "
      "itself slows imports down, so these sums run above the timings of section 3.")
    w("")
    w("| action | all imports | top costs (cumulative ms, imported by) | ganesha_ha modules loaded |")
    w("|---|---:|---|---|")
    for name, (mods, total) in prof.items():
        cand = [(v["cum"], m, v["parent"] or "at run time") for m, v in mods.items()
                if (v["parent"] == "site" or (v["parent"] or "").startswith("ganesha_ha")
                    or (v["depth"] == 0 and m not in INTERPRETER))
                and not m.startswith("ganesha_ha")]
        cand += [(v["cum"], m, v["parent"] or "-") for m, v in mods.items()
                 if m.startswith("ganesha_ha") and v["depth"] == 0]
        top = sorted(cand, reverse=True)[:9]
        tops = ", ".join(f"{m} {c / 1000:.1f}" + (f" ({p})" if p and p != "-" else "")
                         for c, m, p in top)
        ours = sorted(m.replace("ganesha_ha.", "") for m in mods if m.startswith("ganesha_ha."))
        w(f"| {name} | {total / 1000:.1f} ms | {tops} | {', '.join(ours) or '-'} |")
    w("")

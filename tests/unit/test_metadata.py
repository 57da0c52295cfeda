"""The agent's meta-data says what the README's recipe configures, and every literal default; the
agent file prints it from ganesha_ha/data/ without starting Python (issue 19, the per-call floor)."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from agent_helpers import imported_modules
from conftest import ROOT
from ganesha_ha import ocf
from ganesha_ha.settings import DEFAULT_CONFIG

# parameters whose default is not one literal value (so OCF's content default= cannot carry it)
NO_LITERAL_DEFAULT = {"bus_address": "the settings file's [ganesha] bus_address, else $DBUS_SYSTEM_BUS_ADDRESS, "
                                     "else the system bus"}


def metadata() -> ET.Element:
    return ET.fromstring(ocf.meta_data())


def advised() -> dict[str, dict[str, str]]:
    return {a.get("name"): dict(a.attrib) for a in metadata().find("actions")}


def test_advised_operations_are_the_readme_recipes():
    """crmsh and pcs forms of the README's recipe use the meta-data's advised monitor interval
    and start/stop/monitor timeouts for ocf:ganesha-ha:exports."""
    acts = advised()
    want = {"monitor": f"interval={acts['monitor']['interval']} timeout={acts['monitor']['timeout']}",
            "start": f"interval=0s timeout={acts['start']['timeout']}",
            "stop": f"interval=0s timeout={acts['stop']['timeout']}"}
    readme = (ROOT / "README.md").read_text().splitlines()
    crm = [ln for ln in readme if ln.startswith("primitive ") and " ocf:ganesha-ha:exports " in ln]
    pcs = [ln for ln in readme if ln.startswith("pcs resource create ") and " ocf:ganesha-ha:exports " in ln]
    assert crm and pcs, "the README's recipe has an exports primitive in both forms"
    for line in crm:
        assert dict(re.findall(r"op (\w+) (interval=\S+ timeout=\S+)", line)) == want, line
    for line in pcs:
        ops = line.split(" op ", 1)[1]
        assert dict(re.findall(r"(?:^| )(monitor|start|stop) (interval=\S+ timeout=\S+)", ops)) == want, line


def test_parameters_with_a_default_carry_it_in_the_content_element():
    params = {p.get("name"): p.find("content") for p in metadata().find("parameters")}
    assert params["config"].get("default") == str(DEFAULT_CONFIG)
    for p in ocf.PARAMS:
        if p.name in NO_LITERAL_DEFAULT:
            assert params[p.name].get("default") is None
        elif "(default" in p.longdesc:
            assert params[p.name].get("default"), f"{p.name}: its description names a default"
        if p.required:
            assert params[p.name].get("default") is None, f"{p.name}: a required parameter has no default"


def test_server_is_a_select_of_the_servers_table():
    """OCF 1.1 `select`: pcs refuses a value that is not one of the options."""
    from ganesha_ha.servers import SERVERS

    server = next(p for p in metadata().find("parameters") if p.get("name") == "server")
    content = server.find("content")
    assert content.get("type") == "select"
    assert tuple(o.get("value") for o in content.findall("option")) == SERVERS


def _xmllint(*args: str, text: str, cwd: str | None = None):
    import shutil
    import subprocess

    import pytest

    if shutil.which("xmllint") is None:
        pytest.skip("xmllint (libxml2-utils) is not installed")
    return subprocess.run(["xmllint", "--noout", *args, "-"], input=text, text=True, capture_output=True, cwd=cwd)


def test_meta_data_is_valid_for_ocf_tester_and_pcs():
    """ocf-tester's check (`xmllint --valid` in resource-agents' directory, where the OCF 1.0
    DTD lies: the meta-data's own DTD must be the one used) and pcs's OCF 1.1 schema."""
    import os

    import pytest

    text = ocf.meta_data()
    cwd = "/usr/share/resource-agents" if os.path.isdir("/usr/share/resource-agents") else None
    lint = _xmllint("--valid", text=text, cwd=cwd)
    assert lint.returncode == 0, lint.stderr
    # an option the DTD does not allow is caught, so the check above can fail
    bad = _xmllint("--valid", text=text.replace('<option value="knfsd"/>', '<option name="knfsd"/>'), cwd=cwd)
    assert bad.returncode != 0
    rng = "/usr/share/pcs/data/ocf-1.1.rng"
    if not os.path.exists(rng):
        pytest.skip("pcs's OCF 1.1 schema is not installed")
    check = _xmllint("--relaxng", rng, text=text)
    assert check.returncode == 0, check.stderr



@pytest.mark.parametrize("name", ["exports", "notify"])
def test_the_meta_data_files_are_what_the_modules_render(name):
    """The agent file prints ganesha_ha/data/<agent>.xml for meta-data (install.py): it must be
    the document ocf.py renders, byte for byte."""
    from ganesha_ha import notify_agent
    from ganesha_ha.install import meta_data_file

    render = ocf.meta_data if name == "exports" else notify_agent.meta_data
    path = ROOT / "ganesha_ha" / "data" / meta_data_file(name)
    assert path.read_text() == render(), (
        f"regenerate: .venv/bin/python -c \"from ganesha_ha import {'ocf' if name == 'exports' else 'notify_agent'} "
        f"as m; open('{path.relative_to(ROOT)}', 'w').write(m.meta_data())\"")


@pytest.mark.parametrize("name", ["exports", "notify"])
def test_meta_data_is_answered_without_starting_python(tmp_path, name):
    """As Pacemaker runs the agent file: meta-data is the data file, even with the interpreter
    the file names gone (issue 19: a Python start alone costs about a shell agent's whole
    meta-data)."""
    import subprocess

    from ganesha_ha import notify_agent
    from ganesha_ha.install import agent_text

    agent = tmp_path / name
    agent.write_text(agent_text(python=str(tmp_path / "no-such-python"), root=str(ROOT), name=name))
    agent.chmod(0o755)
    proc = subprocess.run([str(agent), "meta-data"], env={"PATH": "/nonexistent"}, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert proc.stdout == (ocf.meta_data() if name == "exports" else notify_agent.meta_data())


def test_usage_loads_the_ocf_vocabulary_only(tmp_path):
    """An action answered by the agent's entry alone (usage) loads the agent's entry and the
    OCF protocol module, none of the model's standard library; its whole answer reaches the
    pipe although the launcher ends with os._exit."""
    rc, out, err, mods = imported_modules("usage", {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
                                                    "OCF_ROOT": "/usr/lib/ocf"}, tmp_path)
    assert rc == 0 and err == "", err
    assert out == ocf.usage()
    ours = {m for m in mods if m.split(".")[0] == "ganesha_ha"}
    assert ours == {"ganesha_ha", "ganesha_ha.agent", "ganesha_ha.agent_params", "ganesha_ha.agent_classic",
                    "ganesha_ha.ocf", "ganesha_ha.errors", "ganesha_ha.servers"}, sorted(ours)
    heavy = {"re", "enum", "functools", "json", "pathlib", "ipaddress", "typing", "subprocess", "site"}
    assert not mods & heavy, sorted(mods & heavy)
    assert "os" in mods, "the import lines were read (os is imported by the agent, not at start-up with -S)"

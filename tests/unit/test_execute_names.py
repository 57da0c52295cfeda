"""How a failed export is named in a log line and an exit reason (execute.ExportFailure)."""
from __future__ import annotations

from ganesha_ha.errors import ApplyError
from ganesha_ha.execute import ExportFailure
from ganesha_ha.model import Export, KnfsdOptions


def test_an_export_is_named_once_when_the_servers_reason_names_it_too():
    """tryout5: a degraded monitor's reason read 'not live: g 4 (Export_Id 12): Export_Id 12
    (/g 4): no client of it resolves ...', 28 of Pacemaker's 128 characters said twice."""
    exp = Export(path="g 4", export_id=12, knfsd=KnfsdOptions("7"), pseudo="/g 4", clients=("host-a.example.com(rw)",))
    same = ApplyError("Export_Id 12 (/g 4): no client of it resolves on this node (host-a.example.com)")
    assert str(ExportFailure(exp, "apply", same, "ganesha")) == (
        "g 4 (Export_Id 12): no client of it resolves on this node (host-a.example.com)")
    # a reason that only begins alike keeps its words (a read-back's "after AddExport")
    other = ApplyError("Export_Id 12 (/g 4) after AddExport: client x: access is RW, the registry says RO")
    assert str(ExportFailure(exp, "apply", other, "ganesha")).endswith(": Export_Id 12 (/g 4) after AddExport: "
                                                                       "client x: access is RW, the registry says RO")
    assert str(ExportFailure(exp, "apply", same, "knfsd")).startswith("g 4: Export_Id 12")

"""The lab: everything needed to run NFS servers, clients and clusters on one machine.

Used by the `ganesha-ha lab` command, the test suite and the benchmarks, so that all
three drive the same real daemons the same way.
"""

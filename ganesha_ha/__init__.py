"""ganesha-ha: highly available NFS exports for knfsd and NFS-Ganesha on Pacemaker.

Each export's identity (Export_Id, fsid, pseudo path, clients, options) lives on the shared
volume itself, so whichever node mounts the volume serves identical exports.
"""
__version__ = "0.1.0"

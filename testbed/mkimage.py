#!/usr/bin/env python3
"""Build a single-layer OCI image-layout tarball from a root filesystem directory.

No registry and no container engine: the result is imported with `ctr images import`.
Every entry is owned by root with a fixed mtime, so the same rootfs gives the same digest.
The layer is streamed through a temporary file, so large rootfs (the ~360 MiB Claude CLI)
do not have to fit in memory.

usage: mkimage.py ROOTFS OUTPUT.tar --name REF [--name REF...] [--cmd JSON] [--env K=V...]
"""
import argparse
import hashlib
import io
import json
import os
import tarfile
import tempfile

# Fixed modification time of every entry (2024-01-01), for reproducible digests.
MTIME = 1704067200
CHUNK = 1 << 20


def normalise(info):
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mtime = MTIME
    return info


def entries(rootfs):
    """The rootfs itself, then every path below it in sorted order (symlinks not followed)."""
    yield rootfs
    for dirpath, dirnames, filenames in os.walk(rootfs):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            yield os.path.join(dirpath, name)


def write_layer(rootfs, fileobj):
    with tarfile.open(fileobj=fileobj, mode="w", format=tarfile.PAX_FORMAT) as layer:
        for path in entries(rootfs):
            info = normalise(layer.gettarinfo(path, arcname=os.path.relpath(path, rootfs)))
            if info.isreg():
                with open(path, "rb") as f:
                    layer.addfile(info, f)
            else:
                layer.addfile(info)


def add_bytes(out, data, media_type):
    digest = hashlib.sha256(data).hexdigest()
    info = normalise(tarfile.TarInfo(f"blobs/sha256/{digest}"))
    info.size = len(data)
    out.addfile(info, io.BytesIO(data))
    return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}


def add_file(out, fileobj, media_type):
    fileobj.seek(0)
    h = hashlib.sha256()
    for chunk in iter(lambda: fileobj.read(CHUNK), b""):
        h.update(chunk)
    size = fileobj.tell()
    fileobj.seek(0)
    info = normalise(tarfile.TarInfo(f"blobs/sha256/{h.hexdigest()}"))
    info.size = size
    out.addfile(info, fileobj)
    return {"mediaType": media_type, "digest": f"sha256:{h.hexdigest()}", "size": size}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("rootfs")
    p.add_argument("output")
    p.add_argument("--name", action="append", required=True, help="image reference, repeatable")
    p.add_argument("--cmd", default='["/bin/sh"]', help="JSON array for the image's Cmd")
    p.add_argument("--env", action="append", default=[], help="KEY=VALUE, repeatable")
    a = p.parse_args()

    tmp_out = a.output + ".tmp"
    with tempfile.TemporaryFile(dir=os.path.dirname(os.path.abspath(a.output))) as layer_file, \
            tarfile.open(tmp_out, "w") as out:
        write_layer(a.rootfs, layer_file)
        layer = add_file(out, layer_file, "application/vnd.oci.image.layer.v1.tar")
        config = {"architecture": "amd64", "os": "linux",
                  "config": {"Cmd": json.loads(a.cmd), "Env": a.env, "WorkingDir": "/"},
                  "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]}}
        config_desc = add_bytes(out, json.dumps(config).encode(), "application/vnd.oci.image.config.v1+json")
        manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": config_desc, "layers": [layer]}
        manifest_desc = add_bytes(out, json.dumps(manifest).encode(), "application/vnd.oci.image.manifest.v1+json")
        index = {"schemaVersion": 2, "manifests": [
            dict(manifest_desc, annotations={"org.opencontainers.image.ref.name": n, "io.containerd.image.name": n})
            for n in a.name]}
        for name, data in (("index.json", json.dumps(index).encode()),
                           ("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')):
            info = normalise(tarfile.TarInfo(name))
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))
    os.replace(tmp_out, a.output)


if __name__ == "__main__":
    main()

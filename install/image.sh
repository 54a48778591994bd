#!/usr/bin/env bash
# Builds Bulwark's image offline: the static binaries (bulwark and, beside
# it, bulwark-runc and bulwark-oci-hook) in /usr/bin in one layer, written as an OCI image layout tarball (no registry, no
# daemon). Load it into a node's containerd with
#   ctr -n k8s.io images import bin/bulwark-image.tar
# Usage: install/image.sh [OUT [IMAGE]] (default bin/bulwark-image.tar,
# localhost/bulwark:dev). The tarball is reproducible: the same binary
# gives the same image ID.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$root/bin/bulwark-image.tar}"
image="${2:-localhost/bulwark:dev}"
tag="${image##*:}"
work="$(mktemp -d /tmp/bulwark-image.XXXXXX)"
trap 'rm -rf "$work"' EXIT

mkdir -p "$work/rootfs/usr/bin" "$work/rootfs/tmp" "$work/layout/blobs/sha256"
chmod 1777 "$work/rootfs/tmp"
(cd "$root" && CGO_ENABLED=0 GOFLAGS=-buildvcs=false go build -ldflags='-s -w' \
	-o "$work/rootfs/usr/bin/" ./cmd/bulwark ./cmd/bulwark-runc ./cmd/bulwark-oci-hook)

# tar_dir DIR OUT writes DIR's contents as a reproducible tar.
tar_dir() {
	(cd "$1" && find . -mindepth 1 -printf '%P\n' | LC_ALL=C sort) |
		tar --no-recursion --mtime=@0 --owner=0 --group=0 --numeric-owner --format=gnu -C "$1" -cf "$2" -T -
}
# blob FILE moves FILE into the layout's blobs and prints its digest.
blob() {
	local d
	d="$(sha256sum "$1" | cut -d' ' -f1)"
	mv "$1" "$work/layout/blobs/sha256/$d"
	echo "$d"
}
size() { stat -c %s "$work/layout/blobs/sha256/$1"; }

tar_dir "$work/rootfs" "$work/layer.tar"
layer="$(blob "$work/layer.tar")"
printf '{"architecture":"amd64","os":"linux","created":"1970-01-01T00:00:00Z","config":{"Entrypoint":["/usr/bin/bulwark"],"Env":["PATH=/usr/bin"],"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
	"$layer" >"$work/config.json"
config="$(blob "$work/config.json")"
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%d}]}' \
	"$config" "$(size "$config")" "$layer" "$(size "$layer")" >"$work/manifest.json"
manifest="$(blob "$work/manifest.json")"
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%d,"platform":{"architecture":"amd64","os":"linux"},"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}]}' \
	"$manifest" "$(size "$manifest")" "$image" "$tag" >"$work/layout/index.json"
printf '{"imageLayoutVersion":"1.0.0"}' >"$work/layout/oci-layout"
mkdir -p "$(dirname "$out")"
tar_dir "$work/layout" "$out.tmp"
mv "$out.tmp" "$out"
printf 'image: %s (config sha256:%s) -> %s\n' "$image" "$config" "$out" >&2

#!/usr/bin/env bash
# Builds the offline e2e images as docker-archive tarballs, without any
# registry, into .cache/e2e/images:
#   bulwark-pause.tar  localhost/bulwark-pause:1  /pause (sleeps until SIGTERM)
#   bulwark-test.tar   localhost/bulwark-test:1   busybox-static applets at
#                      /bin plus /bin/{httpserver,client,spawner}
#   bulwark-nginx.tar  localhost/bulwark-nginx:1  Debian's nginx (its binary,
#                      the shared libraries ldd lists, mime.types) with a
#                      minimal config: master as root, two workers as
#                      www-data, serving "nginx ok" on 8080 (and
#                      /etc/nginx/nobody.conf: the workers as nobody)
# The tarballs are reproducible (fixed mtimes, owners and order), so an
# unchanged image keeps its ID. up.sh imports them with `ctr images import`.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

[ -x /bin/busybox ] || die "/bin/busybox missing: run test/e2e/install.sh"
# The image has no libc: busybox must be the static build (busybox-static).
if ldd /bin/busybox >/dev/null 2>&1; then
	die "/bin/busybox is dynamically linked; install busybox-static"
fi

work="$(mktemp -d /tmp/bulwark-e2e-images.XXXXXX)"
trap 'rm -rf "$work"' EXIT

# go_static OUT PKG builds a static binary of a helper program.
go_static() {
	(cd "$REPO_ROOT" && CGO_ENABLED=0 GOFLAGS=-buildvcs=false go_cmd build -trimpath -ldflags='-s -w' -o "$1" "./test/e2e/images/$2")
}

# tar_dir DIR OUT writes DIR's contents as a reproducible tar.
tar_dir() {
	(cd "$1" && find . -mindepth 1 -printf '%P\n' | LC_ALL=C sort) |
		tar --no-recursion --mtime=@0 --owner=0 --group=0 --numeric-owner --format=gnu -C "$1" -cf "$2" -T -
}

sha() { sha256sum "$1" | cut -d' ' -f1; }

# docker_archive NAME ROOTFS CONFIG_JSON_FRAGMENT OUT: packs ROOTFS as one
# layer with an image config whose "config" object is the fragment.
docker_archive() {
	local name=$1 rootfs=$2 cfg=$3 out=$4
	local d="$work/archive-${name//[^a-z0-9]/_}"
	mkdir -p "$d"
	tar_dir "$rootfs" "$d/layer.tar"
	local diff
	diff="$(sha "$d/layer.tar")"
	mkdir -p "$d/$diff"
	mv "$d/layer.tar" "$d/$diff/layer.tar"
	printf '{"architecture":"amd64","os":"linux","created":"1970-01-01T00:00:00Z","config":%s,"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
		"$cfg" "$diff" >"$d/config.json"
	local id
	id="$(sha "$d/config.json")"
	mv "$d/config.json" "$d/$id.json"
	printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["%s/layer.tar"]}]' "$id" "$name" "$diff" >"$d/manifest.json"
	mkdir -p "$(dirname "$out")"
	tar_dir "$d" "$out.tmp"
	mv "$out.tmp" "$out"
	log "built $name (sha256:$id) -> $out"
}

# The sandbox image.
pause="$work/pause"
mkdir -p "$pause"
go_static "$pause/pause" pause
docker_archive "$PAUSE_IMAGE" "$pause" '{"Entrypoint":["/pause"],"WorkingDir":"/"}' "$E2E_IMAGES/bulwark-pause.tar"

# The test image: busybox applets as symlinks in /bin and the Go helpers.
root="$work/test"
mkdir -p "$root/bin" "$root/etc" "$root/tmp" "$root/proc" "$root/sys" "$root/dev" "$root/root"
chmod 1777 "$root/tmp"
cp /bin/busybox "$root/bin/busybox"
for applet in $(/bin/busybox --list); do
	[ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
done
for p in httpserver client spawner; do
	go_static "$root/bin/$p" "$p"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$root/etc/passwd"
printf 'root:x:0:\nnobody:x:65534:\n' >"$root/etc/group"
docker_archive "$TEST_IMAGE" "$root" '{"Env":["PATH=/bin"],"Cmd":["/bin/sh"],"WorkingDir":"/"}' "$E2E_IMAGES/bulwark-test.tar"

# The nginx image: the host's Debian nginx package's files (the servers
# group of test/deps.sh), nothing else. Its config sits at the binary's
# built-in path; the entrypoint only sends the error log to stderr.
[ -x /usr/sbin/nginx ] || die "/usr/sbin/nginx missing: run test/deps.sh servers"
ng="$work/nginx"
mkdir -p "$ng/usr/sbin" "$ng/etc/nginx" "$ng/var/lib/nginx" "$ng/var/log/nginx" "$ng/run" "$ng/tmp"
chmod 1777 "$ng/tmp"
cp /usr/sbin/nginx "$ng/usr/sbin/nginx"
# Each library at the path the loader looks it up by (ldd's left-hand
# path for the loader, the resolved one for the others), copied through
# the host's usrmerge symlinks.
for lib in $(ldd /usr/sbin/nginx | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'); do
	mkdir -p "$ng$(dirname "$lib")"
	cp -L "$lib" "$ng$lib"
done
cp /etc/nginx/mime.types "$ng/etc/nginx/mime.types"
# nginx_conf USER GROUP: the config with the workers running as USER.
nginx_conf() {
	cat <<-CONF
		user $1 $2;
		worker_processes 2;
		daemon off;
		events { worker_connections 64; }
		http {
		  include mime.types;
		  access_log off;
		  server {
		    listen 8080;
		    location / { return 200 "nginx ok\\n"; }
		  }
		}
	CONF
}
nginx_conf www-data www-data >"$ng/etc/nginx/nginx.conf"
# For the test of a worker that turns into another user: the program's
# own setting, selected with -c.
nginx_conf nobody nogroup >"$ng/etc/nginx/nobody.conf"
printf 'root:x:0:0:root:/root:/bin/false\nwww-data:x:33:33:www-data:/var/www:/bin/false\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$ng/etc/passwd"
printf 'root:x:0:\nwww-data:x:33:\nnogroup:x:65534:\n' >"$ng/etc/group"
docker_archive "$NGINX_IMAGE" "$ng" '{"Entrypoint":["/usr/sbin/nginx","-e","stderr"],"WorkingDir":"/"}' "$E2E_IMAGES/bulwark-nginx.tar"

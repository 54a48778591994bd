#!/usr/bin/env bash
# servers-root.sh DIR builds in DIR (empty or absent) the tree that run.sh
# --root overlays on the guest for the pre-forking server tests
# (cmd/bulwark/servers_test.go): the host's Debian nginx and apache2-bin (the
# servers group of test/deps.sh, installed when missing) as dpkg -L lists
# them, without documentation, plus the shared libraries their programs load
# (ldd), the dynamic loader, /etc/passwd and /etc/group with root, nobody
# (nogroup) and www-data as the host has them, /var/log and /run.
#
# An Apache module is copied only when it needs no library beyond the
# programs' own: the few that need more (LDAP, Lua, libxml2, curl, ...)
# would pull tens of megabytes into the initramfs and no test loads them.
# Paths are the merged-/usr ones (/lib/x86_64-linux-gnu/... becomes
# usr/lib/x86_64-linux-gnu/...), matching the guest's /bin, /sbin and /lib
# symlinks.
set -euo pipefail
. "$(dirname "$0")/common.sh"

[ $# -eq 1 ] || vm_die "usage: servers-root.sh DIR"
dir=$1
mkdir -p "$dir"
[ -z "$(ls -A "$dir")" ] || vm_die "$dir is not empty"
bash "$vm_repo/test/deps.sh" servers || vm_die "installing the servers group of test/deps.sh failed"

# merged prints path $1 as it is below the merged /usr (no leading slash).
merged() {
	local p=${1#/}
	case $p in
	bin | sbin | lib | lib64 | bin/* | sbin/* | lib/* | lib64/*) p=usr/$p ;;
	esac
	printf '%s\n' "$p"
}

# put copies host file $1 to DIR at its merged path, a symlink as a
# symlink followed by what it points to.
put() {
	local src=$1 dst
	dst=$dir/$(merged "$src")
	[ -e "$dst" ] || [ -L "$dst" ] && return 0
	mkdir -p "${dst%/*}"
	cp -a "$src" "$dst"
	# (A dangling one, as nginx-common's modules link, stays dangling.)
	if [ -L "$src" ] && [ -e "$src" ]; then
		local target
		target=$(readlink "$src")
		case $target in
		/*) ;;
		*) target=$(dirname "$src")/$target ;;
		esac
		put "$target"
	fi
}

# libs prints the shared libraries ELF file $1 loads, resolved by ldd.
libs() { ldd "$1" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'; }

files=()
while IFS= read -r f; do
	case $f in
	/usr/share/doc | /usr/share/man | /usr/share/lintian | /usr/share/bug) continue ;;
	/usr/share/doc/* | /usr/share/man/* | /usr/share/lintian/* | /usr/share/bug/*) continue ;;
	esac
	files+=("$f")
done < <(dpkg -L nginx nginx-common apache2-bin | LC_ALL=C sort -u)

programs=() modules=()
for f in "${files[@]}"; do
	[ -f "$f" ] && [ ! -L "$f" ] || continue
	case $f in
	/usr/sbin/*) programs+=("$f") ;;
	/usr/lib/apache2/modules/*.so) modules+=("$f") ;;
	esac
done
mapfile -t base < <(for p in "${programs[@]}"; do libs "$p"; done | LC_ALL=C sort -u)
skipped=()
for f in "${files[@]}"; do
	if [ -d "$f" ]; then
		mkdir -p "$dir/$(merged "$f")"
		continue
	fi
	if [[ $f == /usr/lib/apache2/modules/*.so ]] && [ -f "$f" ] && [ ! -L "$f" ]; then
		extra=$(LC_ALL=C comm -23 <(libs "$f" | LC_ALL=C sort -u) <(printf '%s\n' "${base[@]}"))
		if [ -n "$extra" ]; then
			skipped+=("${f##*/}")
			continue
		fi
	fi
	put "$f"
done
for l in "${base[@]}"; do
	put "$l"
done
# The loader's own name (/lib64/ld-linux-x86-64.so.2) is what the programs
# ask for: the guest needs /lib64 as the host has it.
ln -sfn usr/lib64 "$dir/lib64"

mkdir -p "$dir/etc" "$dir/var/log" "$dir/run"
{
	echo 'root:x:0:0:root:/root:/bin/sh'
	getent passwd nobody www-data
} >"$dir/etc/passwd" || vm_die "the host lacks user nobody or www-data"
{
	echo 'root:x:0:'
	getent group nogroup www-data
} >"$dir/etc/group" || vm_die "the host lacks group nogroup or www-data"
# glibc reads users and groups from the files only (its default without
# nsswitch.conf adds nothing the guest has, but say it).
printf '%s\n' 'passwd: files' 'group: files' 'shadow: files' 'hosts: files' >"$dir/etc/nsswitch.conf"

vm_log "servers root: ${#programs[@]} programs, ${#base[@]} libraries, $(du -sh "$dir" | cut -f1) in $dir"
[ ${#skipped[@]} -eq 0 ] || vm_log "servers root: left out modules needing more libraries: ${skipped[*]}"

#!/usr/bin/env bash
# Fetches (apt-get download) and unpacks (dpkg-deb -x) Debian's packages for the real-Xen test:
# the Xen 4.17 hypervisor, the current dom0 kernel, xen-utils with the libraries xl needs,
# busybox-static, and qemu-system-x86 with its libraries and firmware. Nothing is installed on
# the machine.
#
# usage: fetch.sh CACHE_DIR
#
# CACHE_DIR keeps the .debs (debs/), one unpacked tree per .deb (x/<deb name>/) and the resolved
# package sets (dom0.manifest, qemu.manifest: one .deb file name a line). A second run with the
# same candidate versions downloads and unpacks nothing. When apt cannot resolve or download
# (no package lists, no mirror), the last complete manifests are used if their .debs are all
# still there. Exit 0: the manifests are complete; exit 77: nothing usable, the reason on stderr.
set -euo pipefail

cache=${1:?usage: fetch.sh CACHE_DIR}
mkdir -p "$cache/debs" "$cache/x"
cache=$(cd "$cache" && pwd)

say() { printf 'xen-fetch: %s\n' "$*" >&2; }
skip() { say "SKIP: $*"; exit 77; }

# Packages the dom0 needs besides libraries. The kernel package is resolved below.
DOM0_ROOTS=(xen-hypervisor-4.17-amd64 xen-utils-4.17 xenstore-utils busybox-static)
QEMU_ROOTS=(qemu-system-x86 qemu-system-data seabios qemu-system-common)
# Packages taken without their libraries: qemu-system-common holds the TCG accelerator module
# the test needs (accel-tcg-x86_64.so, which needs only glib) beside display and audio modules
# whose libraries (spice, mesa, alsa) it does not.
NO_FOLLOW=" qemu-system-common "
# At most this many packages in one closure: the walk below is bounded.
MAX_PACKAGES=300

# Direct Depends and Pre-Depends of the arguments that are shared-library packages (lib*,
# zlib1g), one a line. Only libraries are followed: programs, scripts and python the tools
# depend on are not needed by the few binaries the test runs.
lib_depends() {
    apt-cache depends --no-recommends --no-suggests --no-conflicts --no-breaks \
        --no-replaces --no-enhances "$@" 2>/dev/null |
        awk '$1 ~ /^\|?(Pre)?Depends:$/ { print $2 }' |
        grep -E '^(lib[a-z0-9.+-]+|zlib1g)$' | grep -vE -- '-(dev|doc|dbg)$' | sort -u || true
}

# The package names in the library closure of the arguments, one a line; one apt-cache call
# per level of the walk, at most 20 levels.
closure() {
    local -A seen=()
    local level=("$@") next follow name depth=0
    while [ "${#level[@]}" -gt 0 ]; do
        depth=$((depth + 1))
        [ "$depth" -le 20 ] || { say "library closure of $* deeper than 20"; return 1; }
        for name in "${level[@]}"; do seen[$name]=1; done
        [ "${#seen[@]}" -le "$MAX_PACKAGES" ] || { say "more than $MAX_PACKAGES packages from $*"; return 1; }
        next=()
        follow=()
        for name in "${level[@]}"; do
            case $NO_FOLLOW in *" $name "*) ;; *) follow+=("$name") ;; esac
        done
        [ "${#follow[@]}" -gt 0 ] || break
        while read -r name; do
            [ -n "$name" ] && [ -z "${seen[$name]:-}" ] && next+=("$name")
        done < <(lib_depends "${follow[@]}")
        level=("${next[@]}")
    done
    printf '%s\n' "${!seen[@]}" | sort
}

# For each argument, the file name apt-get download gives its candidate (epoch colon as %3a),
# one a line, in the order apt-cache prints them; fails if one has no candidate.
deb_names() {
    apt-cache show --no-all-versions "$@" 2>/dev/null |
        awk '/^Package: / { p = $2 } /^Version: / { v = $2 } /^Architecture: / { a = $2 }
            /^$/ { if (p != "") { gsub(/:/, "%3a", v); print p "_" v "_" a ".deb"; n++ } p = "" }
            END { if (p != "") { gsub(/:/, "%3a", v); print p "_" v "_" a ".deb"; n++ } }'
}

# Resolve, download what is missing, write $cache/$1.manifest. Returns non-zero when apt cannot.
resolve() {
    local set=$1
    shift
    local names=() debs=() missing=() deb
    mapfile -t names < <(closure "$@")
    [ "${#names[@]}" -gt 0 ] || return 1
    mapfile -t debs < <(deb_names "${names[@]}")
    if [ "${#debs[@]}" -ne "${#names[@]}" ]; then
        say "$set: apt knows a candidate for ${#debs[@]} of ${#names[@]} packages"
        return 1
    fi
    for deb in "${debs[@]}"; do
        [ -s "$cache/debs/$deb" ] || missing+=("${deb%%_*}")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        say "$set: downloading ${#missing[@]} of ${#debs[@]} packages"
        (cd "$cache/debs" && apt-get download -q -o APT::Sandbox::User=root "${missing[@]}" >&2) || return 1
    else
        say "$set: all ${#debs[@]} packages already in $cache/debs"
    fi
    for deb in "${debs[@]}"; do
        [ -s "$cache/debs/$deb" ] || { say "apt-get download left no $deb"; return 1; }
    done
    printf '%s\n' "${debs[@]}" >"$cache/$set.manifest.new"
    mv "$cache/$set.manifest.new" "$cache/$set.manifest"
}

# A manifest from an earlier run whose .debs are all still in the cache.
usable_manifest() {
    local manifest=$cache/$1.manifest deb
    [ -s "$manifest" ] || return 1
    while read -r deb; do
        [ -s "$cache/debs/$deb" ] || return 1
    done <"$manifest"
}

command -v apt-cache >/dev/null && command -v dpkg-deb >/dev/null ||
    skip "apt-cache and dpkg-deb are needed (a Debian or Ubuntu machine)"

kernel=$(apt-cache depends linux-image-amd64 2>/dev/null |
    awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }' || true)
for set in dom0 qemu; do
    if [ "$set" = dom0 ]; then roots=("${DOM0_ROOTS[@]}" ${kernel:+"$kernel"}); else roots=("${QEMU_ROOTS[@]}"); fi
    if [ "$set" = dom0 ] && [ -z "$kernel" ]; then
        say "apt cannot resolve linux-image-amd64 (no package lists? run apt-get update)"
        ok=false
    elif resolve "$set" "${roots[@]}"; then
        ok=true
    else
        ok=false
    fi
    if ! $ok; then
        usable_manifest "$set" ||
            skip "cannot fetch the $set packages with apt-get download and $cache holds no complete earlier set"
        say "$set: apt failed; using the earlier set in $cache/$set.manifest"
    fi
done

# Unpack every .deb once.
for set in dom0 qemu; do
    while read -r deb; do
        dir=$cache/x/${deb%.deb}
        [ -e "$dir/.unpacked" ] && continue
        rm -rf "$dir"
        mkdir -p "$dir"
        case $deb in
        linux-image-*)
            # Only the kernel and the Xen drivers: the modules tree is some 500 MB unpacked.
            dpkg-deb --fsys-tarfile "$cache/debs/$deb" |
                tar -x -C "$dir" --wildcards './boot/*' './lib/modules/*/kernel/drivers/xen/*'
            ;;
        *) dpkg-deb -x "$cache/debs/$deb" "$dir" ;;
        esac
        : >"$dir/.unpacked"
    done <"$cache/$set.manifest"
done
say "ready: $(wc -l <"$cache/dom0.manifest") dom0 packages, $(wc -l <"$cache/qemu.manifest") qemu packages"

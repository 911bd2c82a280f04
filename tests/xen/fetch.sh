#!/usr/bin/env bash
# Fetches (apt-get download) and unpacks (dpkg-deb -x) Debian's packages for the real-Xen test:
# a Xen hypervisor, a dom0 kernel, xen-utils with the libraries xl needs, busybox-static, and
# qemu-system-x86 with its libraries and firmware. Nothing is installed on the machine.
#
# usage: fetch.sh CACHE_DIR XEN_RELEASE...
#
# XEN_RELEASE is 4.17 (Debian 12, bookworm: the machine's own apt lists, as `apt-get update`
# left them) or 4.20 (Debian 13, trixie: a private apt configuration under CACHE_DIR/apt-trixie
# with its own sources list, lists, cache and an empty dpkg status, pointing at the machine's
# Debian mirror, or XENPLUG_DEBIAN_MIRROR; the machine's apt sources are never changed and
# nothing from it is ever installed). QEMU always comes from the machine's apt (Debian 12's
# QEMU boots both releases).
#
# CACHE_DIR keeps the .debs (debs/), one unpacked tree per .deb (x/<deb name>/) and the resolved
# package sets (dom0-<release>.manifest, qemu.manifest: one .deb file name a line). A second run
# with the same candidate versions downloads and unpacks nothing. When apt cannot resolve or
# download (no package lists, no mirror), the last complete manifests are used if their .debs
# are all still there. Exit 0: the manifests are complete; exit 77: nothing usable, the reason
# on stderr.
set -euo pipefail

cache=${1:?usage: fetch.sh CACHE_DIR XEN_RELEASE...}
shift
[ "$#" -gt 0 ] || { echo "usage: fetch.sh CACHE_DIR XEN_RELEASE..." >&2; exit 2; }
mkdir -p "$cache/debs" "$cache/x"
cache=$(cd "$cache" && pwd)

say() { printf 'xen-fetch: %s\n' "$*" >&2; }
skip() { say "SKIP: $*"; exit 77; }

QEMU_ROOTS=(qemu-system-x86 qemu-system-data seabios qemu-system-common)
# Packages taken without their libraries: qemu-system-common holds the TCG accelerator module
# the test needs (accel-tcg-x86_64.so, which needs only glib) beside display and audio modules
# whose libraries (spice, mesa, alsa) it does not.
NO_FOLLOW=" qemu-system-common "
# At most this many packages in one closure: the walk below is bounded.
MAX_PACKAGES=300
# The private lists are refreshed when older than this (minutes).
LISTS_MAX_AGE=1440

# The Debian suite of a Xen release.
suite_of() {
    case $1 in
    4.17) echo bookworm ;;
    4.20) echo trixie ;;
    *) say "unknown Xen release $1 (known: 4.17, 4.20)"; exit 2 ;;
    esac
}

# The machine's Debian mirror: the first deb.debian.org-like URI of its sources naming
# bookworm, else deb.debian.org.
machine_mirror() {
    local uri
    uri=$(apt-get indextargets --format '$(REPO_URI)' 'Identifier: Packages' 2>/dev/null |
        grep -m1 -E '/debian/?$' || true)
    echo "${uri:-http://deb.debian.org/debian/}"
}

# Sets APT_CONFIG for suite $1: unset for the machine's own (bookworm), else a private
# configuration under $cache/apt-$1 whose lists are refreshed when missing or old. Returns
# non-zero when the lists cannot be had.
use_apt() {
    local suite=$1
    if [ "$suite" = bookworm ]; then
        unset APT_CONFIG
        return 0
    fi
    local dir=$cache/apt-$suite mirror
    mirror=${XENPLUG_DEBIAN_MIRROR:-$(machine_mirror)}
    mkdir -p "$dir/lists/partial" "$dir/archives/partial" "$dir/parts" "$dir/preferences"
    : >"$dir/status.new"
    [ -s "$dir/status" ] || mv "$dir/status.new" "$dir/status"
    rm -f "$dir/status.new"
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] ${mirror%/} $suite main" >"$dir/sources.list"
    cat >"$dir/apt.conf" <<EOF
Dir::State "$dir";
Dir::State::Lists "$dir/lists";
Dir::State::status "$dir/status";
Dir::Cache "$dir";
Dir::Cache::archives "$dir/archives";
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
Dir::Etc::SourceList "$dir/sources.list";
Dir::Etc::SourceParts "$dir/parts";
Dir::Etc::Parts "$dir/parts";
Dir::Etc::Preferences "$dir/preferences/none";
Dir::Etc::PreferencesParts "$dir/preferences";
APT::Architecture "amd64";
APT::Architectures { "amd64"; };
Acquire::Languages "none";
APT::Sandbox::User "root";
EOF
    export APT_CONFIG=$dir/apt.conf
    if [ -z "$(find "$dir/lists" -maxdepth 1 -name '*_Packages*' -mmin "-$LISTS_MAX_AGE" 2>/dev/null)" ]; then
        say "$suite: apt-get update (private configuration in $dir, mirror ${mirror%/})"
        apt-get update -q >&2 || { say "$suite: apt-get update failed"; return 1; }
    fi
}

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

# Resolves set $1 from roots $3... with the apt of suite $2, or falls back to its last
# complete manifest.
fetch_set() {
    local set=$1 suite=$2
    shift 2
    local ok=false
    if use_apt "$suite"; then
        if [ "$set" = "${set#dom0-}" ]; then
            resolve "$set" "$@" && ok=true
        else
            # The kernel package linux-image-amd64 points at, in that suite.
            local kernel
            kernel=$(apt-cache depends linux-image-amd64 2>/dev/null |
                awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }' || true)
            if [ -z "$kernel" ]; then
                say "$set: apt cannot resolve linux-image-amd64 in $suite (no package lists? run apt-get update)"
            else
                resolve "$set" "$@" "$kernel" && ok=true
            fi
        fi
    fi
    unset APT_CONFIG
    if ! $ok; then
        usable_manifest "$set" ||
            skip "cannot fetch the $set packages with apt-get download and $cache holds no complete earlier set"
        say "$set: apt failed; using the earlier set in $cache/$set.manifest"
    fi
}

command -v apt-cache >/dev/null && command -v dpkg-deb >/dev/null ||
    skip "apt-cache and dpkg-deb are needed (a Debian or Ubuntu machine)"

sets=(qemu)
fetch_set qemu bookworm "${QEMU_ROOTS[@]}"
for release in "$@"; do
    suite=$(suite_of "$release")
    fetch_set "dom0-$release" "$suite" "xen-hypervisor-$release-amd64" "xen-utils-$release" \
        xenstore-utils busybox-static
    sets+=("dom0-$release")
done

# Unpack every .deb once.
for set in "${sets[@]}"; do
    while read -r deb; do
        dir=$cache/x/${deb%.deb}
        [ -e "$dir/.unpacked" ] && continue
        rm -rf "$dir"
        mkdir -p "$dir"
        case $deb in
        linux-image-*)
            # Only the kernel and the Xen drivers: the modules tree is some 500 MB unpacked.
            dpkg-deb --fsys-tarfile "$cache/debs/$deb" |
                tar -x -C "$dir" --wildcards \
                    './boot/vmlinuz-*' './lib/modules/*/kernel/drivers/xen/*' \
                    './usr/lib/modules/*/kernel/drivers/xen/*' 2>/dev/null ||
                [ -n "$(find "$dir" -name 'vmlinuz-*' -print -quit)" ] ||
                { say "no kernel in $deb"; exit 1; }
            ;;
        *) dpkg-deb -x "$cache/debs/$deb" "$dir" ;;
        esac
        : >"$dir/.unpacked"
    done <"$cache/$set.manifest"
done
for set in "${sets[@]}"; do
    say "ready: $(wc -l <"$cache/$set.manifest") packages in $set"
done

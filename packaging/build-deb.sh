#!/usr/bin/env bash
# Builds xenplug's Debian packages from the release artifacts and prints their paths:
#
#   xenplug_VERSION_ARCH.deb        the static musl program (every role, every backend but
#                                   libxl), the role links, the man pages, the systemd units,
#                                   sysvinit and OpenRC scripts and defaults files of
#                                   `advertise vm`, `track` and `console serve`, and the
#                                   example services; for amd64 and arm64.
#   xenplug-dom0_VERSION_amd64.deb  the same with the dom0 program (glibc, the libxl backend)
#                                   and the hypervisor's unit, scripts and defaults file; it
#                                   conflicts with and replaces xenplug, which it contains.
#
#   packaging/build-deb.sh [ARCH...]     ARCH: amd64, arm64 (default: both)
#
# The packages go to target/deb/. VERSION is Cargo.toml's (a native Debian version). The
# programs come from packaging/build-release.sh and packaging/build-dom0.sh (which do nothing
# when they are up to date); the man pages are made from the amd64 program's --help
# (packaging/man/generate.sh) and must render without a warning (groff -ww).
#
# Debian's own dpkg-deb assembles them rather than cargo-deb: the two flavors of one program,
# which replace each other, and the artifacts the other scripts check are plain to describe
# here, and nothing has to be installed from crates.io. Maintainer scripts: packaging/deb/.
set -euo pipefail
cd "$(dirname "$0")/.."

arches=("$@")
[ ${#arches[@]} -gt 0 ] || arches=(amd64 arm64)
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
[ -n "$version" ] || { echo "build-deb: no version in Cargo.toml" >&2; exit 1; }
maintainer="${XENPLUG_DEB_MAINTAINER:-xenplug developers <dev@xenplug.invalid>}"
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}"
out=target/deb
work=$out/work
rm -rf "$work"
mkdir -p "$work"

# The roles each flavor starts as a service (unit, init scripts, defaults file).
roles_musl="xenplug-vm xenplug-track xenplug-console"
roles_dom0="xenplug-hypervisor $roles_musl"

host_artifact=$(packaging/build-release.sh)
man=$work/man
packaging/man/generate.sh "$host_artifact" "$man" >&2
for page in "$man"/*; do
    warnings=$(groff -ww -z -man "$page" 2>&1)
    if [ -n "$warnings" ]; then
        echo "build-deb: $page renders with warnings:" >&2
        echo "$warnings" >&2
        exit 1
    fi
done

# stage ROOT PACKAGE ARTIFACT ROLES: the files of PACKAGE under ROOT.
stage() {
    local root=$1 package=$2 artifact=$3 roles=$4 doc role page
    doc=$root/usr/share/doc/$package
    install -D -m 0755 "$artifact" "$root/usr/bin/xenplug"
    ln -s xenplug "$root/usr/bin/xenplug-console"
    install -d "$root/usr/sbin"
    for role in hypervisor vm track; do
        ln -s ../bin/xenplug "$root/usr/sbin/xenplug-$role"
    done
    for page in "$man"/*; do
        section=${page##*.}
        install -D -m 0644 "$page" "$root/usr/share/man/man$section/$(basename "$page")"
        gzip -9n "$root/usr/share/man/man$section/$(basename "$page")"
    done
    ln -s xenplug-advertise.8.gz "$root/usr/share/man/man8/xenplug-hypervisor.8.gz"
    ln -s xenplug-advertise.8.gz "$root/usr/share/man/man8/xenplug-vm.8.gz"
    for role in $roles; do
        install -D -m 0644 "packaging/systemd/$role.service" "$root/lib/systemd/system/$role.service"
        install -D -m 0644 "packaging/systemd/$role.default" "$root/etc/default/$role"
        install -D -m 0755 "packaging/sysvinit/$role" "$root/etc/init.d/$role"
        install -D -m 0755 "packaging/openrc/$role" "$root/usr/share/xenplug/openrc/$role"
    done
    install -D -m 0644 packaging/sysvinit/init-functions "$root/usr/share/xenplug/init-functions"
    install -D -m 0644 packaging/deb/logrotate "$root/etc/logrotate.d/xenplug"
    install -d -m 0755 "$root/etc/xenplug/services"
    install -d "$doc/examples"
    cp -r packaging/services "$doc/examples/services"
    find "$doc/examples" -type d -exec chmod 0755 {} + -o -type f -exec chmod 0644 {} +
    chmod 0755 "$doc"/examples/services/*/handler
    sed -e "/^@EMBEDDED@$/{r packaging/deb/copyright-${5}" -e 'd}' packaging/deb/copyright \
        >"$doc/copyright"
    {
        echo "$package ($version) unstable; urgency=medium"
        echo
        echo "  * xenplug $version, from commit $(git rev-parse --short HEAD)."
        echo
        echo " -- $maintainer  $(date -u -R -d "@$SOURCE_DATE_EPOCH")"
    } | gzip -9n >"$doc/changelog.gz"
    overrides "$package" "$5" "$artifact" | install -D -m 0644 /dev/stdin "$root/usr/share/lintian/overrides/$package"
}

# overrides PACKAGE FLAVOR ARTIFACT: lintian's overrides, each with why.
overrides() {
    case $(file -b "$3") in
        *static-pie*)
            echo "# A static-pie executable (one static program by design), not a shared library."
            echo "$1: shared-library-lacks-prerequisites [usr/bin/xenplug]"
            ;;
        *)
            echo "# One static program by design: the same file runs in any distribution's VM"
            echo "# images and dom0s."
            echo "$1: statically-linked-binary [usr/bin/xenplug]"
            ;;
    esac
    cat <<EOF
# OpenRC's own scripts, for systems booted by OpenRC (Alpine is a common dom0); Debian's
# openrc runs the LSB scripts of /etc/init.d instead.
$1: unusual-interpreter /sbin/openrc-run [usr/share/xenplug/openrc/*]
EOF
    if [ "$2" = dom0 ]; then
        cat <<EOF
# libxenguest of Debian 12's libxen-dev, linked statically into the dom0 program, calls zlib
# (guest kernel images); the program holds no other copy.
$1: embedded-library zlib [usr/bin/xenplug]
EOF
    fi
}

# control ROOT PACKAGE ARCH ROLES FIELDS DESCRIPTION: the DEBIAN/ directory.
control() {
    local root=$1 package=$2 arch=$3 roles=$4 fields=$5 description=$6 script
    install -d -m 0755 "$root/DEBIAN"
    # @ROLES@: the roles' names; a line "@UPDATE_RC_D ACTION@": one update-rc.d line per role,
    # written out so that lintian sees each script registered.
    for script in postinst prerm postrm; do
        awk -v roles="$roles" '
            { gsub(/@ROLES@/, roles) }
            /^[ \t]*@UPDATE_RC_D [a-z-]+@$/ {
                indent = $0; sub(/@.*/, "", indent)
                action = $2; sub(/@$/, "", action)
                n = split(roles, names, " ")
                for (i = 1; i <= n; i++) print indent "update-rc.d " names[i] " " action " >/dev/null"
                next
            }
            { print }' "packaging/deb/$script" >"$root/DEBIAN/$script"
        chmod 0755 "$root/DEBIAN/$script"
    done
    (cd "$root" && find etc -type f | sort | sed 's|^|/|') >"$root/DEBIAN/conffiles"
    (cd "$root" && find usr lib -type f | sort | xargs md5sum) >"$root/DEBIAN/md5sums"
    cat >"$root/DEBIAN/control" <<EOF
Package: $package
Version: $version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)
Depends: adduser
${fields}Section: net
Priority: optional
Description: discover and manage Xen hypervisors and their VMs over UPnP
 One statically linked program with one role per place it runs: a Xen host
 (dom0) advertises itself and one UPnP device per domain, a virtual machine
 advertises itself with the services its owner chose, a tracker keeps the
 provider's configuration repositories from both, and a console (terminal or
 web page) shows and controls them.
 .
$description
 .
 Services are installed disabled: each starts once its /etc/default file names
 its network interfaces and the administrator enables it.
EOF
}

# build ROOT: the .deb, its path printed.
build() {
    local root=$1 deb
    deb=$out/$(sed -n 's/^Package: //p' "$root/DEBIAN/control")_${version}_$(sed -n 's/^Architecture: //p' "$root/DEBIAN/control").deb
    dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
    echo "$deb"
}

for arch in "${arches[@]}"; do
    case $arch in
        amd64) artifact=$host_artifact ;;
        arm64) artifact=$(packaging/build-release.sh aarch64-unknown-linux-musl) ;;
        *) echo "build-deb: unknown architecture $arch (amd64, arm64)" >&2; exit 2 ;;
    esac
    root=$work/xenplug_$arch
    stage "$root" xenplug "$artifact" "$roles_musl" musl
    control "$root" xenplug "$arch" "$roles_musl" "" \
" This package holds the program built with musl: every role, and every
 backend of the hypervisor but libxl (see xenplug-dom0), with the services of
 a VM, a tracker and a web console."
    build "$root"
    if [ "$arch" = amd64 ]; then
        root=$work/xenplug-dom0_$arch
        stage "$root" xenplug-dom0 "$(packaging/build-dom0.sh)" "$roles_dom0" dom0
        control "$root" xenplug-dom0 "$arch" "$roles_dom0" \
"Provides: xenplug
Conflicts: xenplug
Replaces: xenplug
" \
" This package holds the dom0 program, built against glibc with the libxl
 backend of Xen 4.17 linked in, and the hypervisor's service besides the
 services of the xenplug package, which it replaces."
        build "$root"
    fi
done

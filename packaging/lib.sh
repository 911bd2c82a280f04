# Shared by the packaging build scripts (sourced, not run): checks that a built artifact is
# statically linked and reports it.

# require_static ARTIFACT LABEL: exits 1 unless `file` calls ARTIFACT statically linked
# (static-pie counts); otherwise prints its size and `file` description on stderr.
require_static() {
    local artifact=$1 label=$2 description
    if [ ! -f "$artifact" ]; then
        echo "$label: $artifact was not built" >&2
        exit 1
    fi
    description=$(file -b "$artifact")
    case "$description" in
      *"statically linked"*|*"static-pie linked"*) ;;
      *) echo "$label: $artifact is not statically linked: $description" >&2; exit 1 ;;
    esac
    echo "$label: $(stat -c %s "$artifact") bytes, $description" >&2
}

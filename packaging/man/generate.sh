#!/bin/sh
# Writes xenplug's man pages into OUTDIR from the templates beside this script (*.1.in, *.8.in)
# and the --help of BINARY, so that every synopsis, summary, option, argument and subcommand
# list is the binary's own text (argh's help, made from the doc comments of src/cli.rs); the
# templates add what --help does not say: files, signals, exit status, examples.
#
#   packaging/man/generate.sh BINARY OUTDIR
#
# A template line that is one directive is replaced:
#   @SYNOPSIS words@   the usage line of `xenplug words --help`
#   @ABOUT words@      its description
#   @OPTIONS words@    its positional arguments and options (a .TP list; --help left out)
#   @COMMANDS words@   its subcommands (a .TP list)
#   @ROLES@            the roles `xenplug --help` lists
# and @VERSION@ and @DATE@ anywhere (the date from SOURCE_DATE_EPOCH, else the last commit).
# Hyphens in generated text become \- (ASCII in Debian's man, so options and paths copy right).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
binary=$1
out=$2
mkdir -p "$out"
version=$("$binary" --version | awk '{ print $2 }')
epoch=${SOURCE_DATE_EPOCH:-$(git -C "$here" log -1 --format=%ct 2>/dev/null || date +%s)}
date=$(date -u -d "@$epoch" +%Y-%m-%d)

# Roff-safe text: backslashes, hyphens, `code` in bold, no control character first.
escape() {
	sed -e 's/\\/\\e/g' -e 's/-/\\-/g' -e 's/`\([^`]*\)`/\\fB\1\\fR/g' \
		-e "s/^\\([.']\\)/\\\\\\&\\1/"
}

# A request line: MACRO then each argument escaped, quoted when it holds a space. (Shell
# functions share their variables: the names here are used nowhere else.)
request() {
	request_line=$1
	shift
	for argument; do
		word=$(printf '%s\n' "$argument" | escape)
		case $word in
			*" "*) request_line="$request_line \"$word\"" ;;
			*) request_line="$request_line $word" ;;
		esac
	done
	printf '%s\n' "$request_line"
}

# Parses argh's help on stdin and prints the part MODE asks for, unescaped.
# Entries: "  NAME<pad to column 21>TEXT" then continuation lines indented by 20 spaces; a
# NAME too long for its column is alone on its line.
parse() {
	awk -v mode="$1" '
	function flush() {
		if (mode == "list" && name != "" && name !~ /^--help/) {
			if (section == "cmd") print "@B " name
			else if (section == "pos") print "@I " name
			else print "@O " name
			print text
		}
		name = ""; text = ""
	}
	NR == 1 && /^Usage: / { if (mode == "usage") print substr($0, 8); next }
	/^[A-Z][A-Za-z ]*:$/ {
		flush()
		section = ($0 == "Commands:") ? "cmd" : ($0 == "Positional Arguments:") ? "pos" : "opt"
		next
	}
	section == "" && NF > 0 { about = about (about == "" ? "" : " ") $0; next }
	section != "" && /^                    / { line = $0; sub(/^ +/, "", line); text = text (text == "" ? "" : " ") line; next }
	section != "" && /^  [^ ]/ {
		flush()
		line = substr($0, 3)
		if (length(line) >= 19 && substr(line, 18, 1) == " ") {
			name = substr(line, 1, 18); sub(/ +$/, "", name)
			text = substr(line, 19); sub(/^ +/, "", text)
		} else {
			name = line; sub(/ +$/, "", name); text = ""
		}
		next
	}
	END { flush(); if (mode == "about") print about }
	'
}

# The help of `xenplug WORDS`.
help() {
	# shellcheck disable=SC2086 # WORDS are words
	"$binary" $1 --help
}

# argh's usage line for WORDS as roff: the command in bold, options bold, values italic.
synopsis() {
	usage=$(help "$1" | parse usage)
	rest=${usage#"xenplug $1"}
	rest=${rest# }
	request .B "xenplug $1"
	printf '%s\n' "$rest" | escape | sed -e 's/\(\\-\\-[a-z][a-z\\-]*\)/\\fB\1\\fR/g' \
		-e 's/<\([^>]*\)>/\\fI\1\\fR/g'
}

# The option, argument or command list of WORDS as .TP entries.
entries() {
	usage=$(help "$1" | parse usage)
	help "$1" | parse list | while IFS= read -r head && IFS= read -r text; do
		kind=${head%% *}
		name=${head#* }
		echo ".TP"
		case $kind in
			@B) request .B "$name" ;;
			@I) request .I "$name" ;;
			@O)
				# The value's placeholder, as the usage line names it (none: a switch).
				value=$(printf '%s\n' "$usage" | tr ' ' '\n' | grep -A1 -x -F -e "$name" -e "[$name" |
					sed -n 's/^<\([^>.]*\)\(\.\.\.\)\{0,1\}>.*$/\1/p' | head -n 1)
				if [ -n "$value" ]; then
					request .BI "$name " "$value"
				else
					request .B "$name"
				fi
				;;
		esac
		printf '%s\n' "$text" | escape
	done
}

for template in "$here"/*.in; do
	page=$(basename "$template" .in)
	while IFS= read -r line; do
		case $line in
			@SYNOPSIS\ *@) words=${line#@SYNOPSIS }; synopsis "${words%@}" ;;
			@ABOUT\ *@) words=${line#@ABOUT }; help "${words%@}" | parse about | escape ;;
			@OPTIONS\ *@|@COMMANDS\ *@) words=${line#@* }; entries "${words%@}" ;;
			@ROLES@)
				# `xenplug --help` pads each role to 22 columns after two spaces.
				"$binary" --help | awk '/^Roles:/ { on = 1; next }
					on && /^  [a-z]/ { role = substr($0, 3, 22); sub(/ +$/, "", role)
						print role "\t" substr($0, 25) }
					on && /^$/ { on = 0 }' |
					while IFS="$(printf '\t')" read -r role summary; do
						echo ".TP"
						request .B "xenplug $role"
						printf '%s\n' "$summary" | escape
					done
				;;
			*) printf '%s\n' "$line" | sed -e "s/@VERSION@/$version/g" -e "s/@DATE@/$date/g" ;;
		esac
	done <"$template" >"$out/$page"
done

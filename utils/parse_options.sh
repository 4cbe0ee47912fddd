#!/usr/bin/env bash
# Source this after declaring a script's variables: turns "--stage 3 --stop-stage 5" into
# stage=3 stop_stage=5. Only variables that already exist may be set (so a typo is an error),
# "--name=value" works too, and "--help" prints $help_message. Positional arguments remain
# in "$@".
#
#   stage=1; nj=4
#   . utils/parse_options.sh
while [[ $# -gt 0 ]]; do
    case "$1" in
        --help|-h)
            echo "${help_message:-usage: $0 [--option value ...]}"
            exit 0
            ;;
        --*=*)
            _opt=${1%%=*}; _val=${1#*=}; shift
            ;;
        --*)
            _opt=$1
            if [[ $# -lt 2 ]]; then
                echo "$0: option $_opt needs a value" >&2
                exit 1
            fi
            _val=$2; shift 2
            ;;
        *)
            break
            ;;
    esac
    _name=${_opt#--}
    _name=${_name//-/_}
    if [[ ! "$_name" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || ! declare -p "$_name" >/dev/null 2>&1; then
        echo "$0: unknown option $_opt (run $0 --help for the options)" >&2
        exit 1
    fi
    # Values keep their spaces: --test_sets "test valid".
    printf -v "$_name" '%s' "$_val"
done
unset _opt _val _name
true

#!/usr/bin/env bash
# peek_option NAME "$@": the value of --NAME VALUE or --NAME=VALUE among a run.sh's arguments, for
# a variable that the recipe's lists depend on before egs/TEMPLATE/legonn.sh parses every option
# (which then sets it again, to the same value). Prints nothing and fails when it is absent.
peek_option() {
    local name=$1 i j
    shift
    for ((i = 1; i <= $#; i++)); do
        case ${!i} in
            "--$name") j=$((i + 1)); echo "${!j:-}"; return 0 ;;
            "--$name="*) echo "${!i#--"$name"=}"; return 0 ;;
        esac
    done
    return 1
}

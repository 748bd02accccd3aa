# bash completion for dtrain. Load it in this shell with
#   source <(dtrain completion bash)
# or for every shell with
#   dtrain completion bash > ~/.local/share/bash-completion/completions/dtrain
#
# dtrain answers with the commands or flags that may come next when its
# arguments end in --generate-bash-completion (urfave/cli's protocol).

_dtrain_complete() {
  local cur="${COMP_WORDS[COMP_CWORD]}"
  local -a words=("${COMP_WORDS[@]:0:COMP_CWORD}")
  local opts
  COMPREPLY=()
  if [[ "$cur" == -* ]]; then
    opts=$("${words[0]}" "${words[@]:1}" "$cur" --generate-bash-completion 2>/dev/null)
  else
    opts=$("${words[0]}" "${words[@]:1}" --generate-bash-completion 2>/dev/null)
  fi
  # No answer (a command's positional argument): -o default offers files.
  [[ -n "$opts" ]] || return 0
  local IFS=$'\n'
  COMPREPLY=($(compgen -W "$opts" -- "$cur"))
}

complete -o bashdefault -o default -F _dtrain_complete dtrain

#compdef dtrain
# zsh completion for dtrain. Load it in this shell with
#   source <(dtrain completion zsh)
# or for every shell, as _dtrain in a directory on $fpath (before compinit):
#   dtrain completion zsh > "${fpath[1]}/_dtrain"
#
# dtrain answers with the commands or flags that may come next when its
# arguments end in --generate-bash-completion (urfave/cli's protocol).

_dtrain() {
  local cur=${words[CURRENT]}
  local -a opts
  if [[ $cur == -* ]]; then
    opts=("${(@f)$(${words[1]} ${words[2,CURRENT-1]} $cur --generate-bash-completion 2>/dev/null)}")
  else
    opts=("${(@f)$(${words[1]} ${words[2,CURRENT-1]} --generate-bash-completion 2>/dev/null)}")
  fi
  if [[ -n ${opts[1]} ]]; then
    _describe 'dtrain' opts
  else
    _files
  fi
}

if [[ ${zsh_eval_context[-1]} == loadautofunc ]]; then
  _dtrain "$@"
else
  compdef _dtrain dtrain
fi

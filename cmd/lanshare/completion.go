package main

import (
	"fmt"
	"io"

	"github.com/urfave/cli/v2"
)

// Shell completion scripts. Each asks lanshare itself for the words that
// fit (urfave/cli's --generate-bash-completion), so they follow the
// commands and flags as they change; where lanshare offers nothing (a
// path), they fall back to file names. Nothing here touches the network.
const bashCompletion = `# bash completion for lanshare; load with: eval "$(lanshare completion bash)"
_lanshare() {
	local cur=${COMP_WORDS[COMP_CWORD]} IFS=$'\n'
	local -a args=("${COMP_WORDS[@]:1:COMP_CWORD-1}")
	[[ $cur == -* ]] && args+=("$cur")
	COMPREPLY=($(compgen -W "$("${COMP_WORDS[0]}" "${args[@]}" --generate-bash-completion 2>/dev/null)" -- "$cur"))
	if [[ ${#COMPREPLY[@]} -eq 0 ]]; then
		compopt -o default
	fi
}
complete -F _lanshare lanshare
`

const zshCompletion = `#compdef lanshare
# zsh completion for lanshare; load with: source <(lanshare completion zsh)
_lanshare() {
	local -a args opts
	args=(${words[2,CURRENT-1]})
	[[ ${words[CURRENT]} == -* ]] && args+=(${words[CURRENT]})
	opts=("${(@f)$(SHELL=zsh ${words[1]} ${args[@]} --generate-bash-completion 2>/dev/null)}")
	if [[ -n ${opts[1]} ]]; then
		_describe 'lanshare' opts
	else
		_files
	fi
}
compdef _lanshare lanshare
`

// completion prints the completion script for shell.
func completion(app *cli.App, shell string, w io.Writer) error {
	switch shell {
	case "bash":
		_, err := io.WriteString(w, bashCompletion)
		return err
	case "zsh":
		_, err := io.WriteString(w, zshCompletion)
		return err
	case "fish":
		s, err := app.ToFishCompletion()
		if err != nil {
			return err
		}
		_, err = io.WriteString(w, s)
		return err
	}
	return usageError{msg: fmt.Sprintf("no completion for shell %q: want bash, zsh or fish", shell)}
}

package main

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/spf13/pflag"
)

// Shell completion: `cgfreeze completion bash|zsh|fish` prints a script
// generated from the same flag definitions as the commands parse, so that
// a flag added to a command is completed without another edit.

// completionShells are the shells that `cgfreeze completion` knows.
var completionShells = []string{"bash", "zsh", "fish"}

// flagValues are the values a flag's completion offers; "<dir>" completes
// directories, "<pid>" the PIDs in /proc.
var flagValues = map[string][]string{
	"output":           {"text", "json"},
	"log-level":        {"debug", "info", "warn", "error", "disabled"},
	"log-format":       {"console", "json"},
	"cgroup-version":   {"1", "2"},
	"lease":            {"stdin", "parent"},
	"drop-connections": {"on", "required", "off"},
	"drop-direction":   {"inbound", "outbound", "both"},
	"proc":             {"<dir>"},
	"sys-cgroup":       {"<dir>"},
	"cgroup-mount":     {"<dir>"},
	"pid":              {"<pid>"},
}

// targetCommands are the commands whose flags defineFlags registers.
var targetCommands = []string{"freeze", "thaw", "status"}

// commandFlags returns the flag set of a command that has flags.
func commandFlags(cmd string) *pflag.FlagSet {
	if cmd == "version" {
		fs := pflag.NewFlagSet("version", pflag.ContinueOnError)
		fs.StringP("output", "o", "text", "text, or json")
		return fs
	}
	var c config
	var leases []string
	fs, _ := defineFlags(cmd, &c, &leases)
	return fs
}

func runCompletion(args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("completion", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stdout, `Usage: cgfreeze completion bash|zsh|fish

Print the shell completion script for bash, zsh or fish. To load it:
  bash:  source <(cgfreeze completion bash)
         or cgfreeze completion bash > /usr/share/bash-completion/completions/cgfreeze
  zsh:   cgfreeze completion zsh > "${fpath[1]}/_cgfreeze"   (then: compinit)
  fish:  cgfreeze completion fish > ~/.config/fish/completions/cgfreeze.fish
`)
	}
	if err := fs.Parse(args); err != nil {
		return usageError(err, stdout, stderr, false, "completion")
	}
	if fs.NArg() != 1 {
		return usageFail(stdout, stderr, false, fmt.Sprintf("completion takes one shell, bash, zsh or fish, got %q (see cgfreeze completion --help)", fs.Args()))
	}
	switch fs.Arg(0) {
	case "bash":
		fmt.Fprint(stdout, bashCompletion())
	case "zsh":
		fmt.Fprint(stdout, zshCompletion())
	case "fish":
		fmt.Fprint(stdout, fishCompletion())
	default:
		return usageFail(stdout, stderr, false, fmt.Sprintf("completion: unknown shell %q: bash, zsh or fish (see cgfreeze completion --help)", fs.Arg(0)))
	}
	return exitOK
}

// flagWords lists a command's flags as typed: --long and -s.
func flagWords(fs *pflag.FlagSet) []string {
	var w []string
	fs.VisitAll(func(f *pflag.Flag) {
		w = append(w, "--"+f.Name)
		if f.Shorthand != "" {
			w = append(w, "-"+f.Shorthand)
		}
	})
	return append(w, "--help")
}

// valueFlags lists the flags of every command that take a value, with
// what completes it ("" for a free value).
func valueFlags() map[string]string {
	out := map[string]string{}
	for _, cmd := range append(targetCommands, "version") {
		commandFlags(cmd).VisitAll(func(f *pflag.Flag) {
			if f.Value.Type() == "bool" || f.NoOptDefVal != "" {
				return
			}
			v := strings.Join(flagValues[f.Name], " ")
			out["--"+f.Name] = v
			if f.Shorthand != "" {
				out["-"+f.Shorthand] = v
			}
		})
	}
	return out
}

func bashCompletion() string {
	var b strings.Builder
	b.WriteString(`# bash completion for cgfreeze (cgfreeze completion bash)
_cgfreeze() {
    local cur prev cmd i
    cur="${COMP_WORDS[COMP_CWORD]}"
    prev="${COMP_WORDS[COMP_CWORD-1]}"
    cmd=freeze
    for ((i = 1; i < COMP_CWORD; i++)); do
        case "${COMP_WORDS[i]}" in
        ` + strings.Join(commandNames(), "|") + `) cmd="${COMP_WORDS[i]}"; break ;;
        esac
    done
    case "$prev" in
`)
	vf := valueFlags()
	keys := make([]string, 0, len(vf))
	for k := range vf {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "    %s)\n        %s\n        return ;;\n", k, bashValues(vf[k]))
	}
	b.WriteString(`    esac
    if [[ "$cur" == --drop-connections=* ]]; then
        COMPREPLY=($(compgen -P --drop-connections= -W "` + strings.Join(flagValues["drop-connections"], " ") + `" -- "${cur#--drop-connections=}"))
        return
    fi
    local words
    case "$cmd" in
`)
	for _, cmd := range targetCommands {
		fmt.Fprintf(&b, "    %s) words=%q ;;\n", cmd, strings.Join(flagWords(commandFlags(cmd)), " "))
	}
	fmt.Fprintf(&b, "    version) words=%q ;;\n", strings.Join(flagWords(commandFlags("version")), " "))
	fmt.Fprintf(&b, "    completion) words=%q ;;\n", strings.Join(completionShells, " "))
	fmt.Fprintf(&b, "    help) words=%q ;;\n", strings.Join(commandNames(), " "))
	b.WriteString(`    *) words="--help" ;;
    esac
    if [[ $COMP_CWORD -eq 1 && "$cur" != -* ]]; then
        words="` + strings.Join(commandNames(), " ") + `"
    fi
    COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -F _cgfreeze cgfreeze
`)
	return b.String()
}

func bashValues(v string) string {
	switch v {
	case "<dir>":
		return `COMPREPLY=($(compgen -d -- "$cur"))`
	case "<pid>":
		return `COMPREPLY=($(compgen -W "$(cd /proc && printf '%s\n' [0-9]*)" -- "$cur"))`
	case "":
		return "COMPREPLY=()"
	}
	return fmt.Sprintf("COMPREPLY=($(compgen -W %q -- \"$cur\"))", v)
}

// zshQuote escapes what _arguments reads specially in a description.
func zshQuote(s string) string {
	r := strings.NewReplacer("'", `'\''`, "[", `\[`, "]", `\]`, ":", `\:`)
	return r.Replace(s)
}

func zshCompletion() string {
	var b strings.Builder
	b.WriteString(`#compdef cgfreeze
# zsh completion for cgfreeze (cgfreeze completion zsh)

_cgfreeze() {
    local -a commands
    commands=(
`)
	for _, c := range commands {
		fmt.Fprintf(&b, "        '%s:%s'\n", c.name, zshQuote(c.summary))
	}
	b.WriteString(`    )
    local cmd=freeze
    if (( CURRENT > 2 )) && (( ${commands[(I)${words[2]}:*]} )); then
        cmd=${words[2]}
        shift words
        (( CURRENT-- ))
    elif (( CURRENT == 2 )) && [[ ${words[2]} != -* ]]; then
        _describe -t commands 'cgfreeze command' commands
        return
    fi
    case $cmd in
`)
	for _, cmd := range append(targetCommands, "version") {
		fmt.Fprintf(&b, "    %s)\n        _arguments -s \\\n", cmd)
		commandFlags(cmd).VisitAll(func(f *pflag.Flag) {
			fmt.Fprintf(&b, "            %s \\\n", zshSpec(f))
		})
		b.WriteString("            '(-h --help)'{-h,--help}'[print the help]'\n        ;;\n")
	}
	fmt.Fprintf(&b, "    completion)\n        _values 'shell' %s\n        ;;\n", strings.Join(completionShells, " "))
	b.WriteString("    help)\n        _describe -t commands 'cgfreeze command' commands\n        ;;\n    esac\n}\n\n_cgfreeze \"$@\"\n")
	return b.String()
}

func zshSpec(f *pflag.Flag) string {
	desc := "[" + zshQuote(f.Usage) + "]"
	action := ""
	if f.Value.Type() != "bool" {
		switch v := strings.Join(flagValues[f.Name], " "); v {
		case "<dir>":
			action = ":directory:_files -/"
		case "<pid>":
			action = ":pid:_pids"
		case "":
			action = ":" + f.Name + ": "
		default:
			action = ":" + f.Name + ":(" + v + ")"
		}
	}
	name := "--" + f.Name
	if f.NoOptDefVal != "" {
		// An optional value: only --flag=value.
		name += "=-"
		action = "::" + f.Name + ":(" + strings.Join(flagValues[f.Name], " ") + ")"
	}
	if f.Shorthand != "" {
		return fmt.Sprintf("'(-%s --%s)'{-%s,%s}'%s%s'", f.Shorthand, f.Name, f.Shorthand, name, desc, action)
	}
	return fmt.Sprintf("'%s%s%s'", name, desc, action)
}

// fishQuote quotes s for fish, in single quotes.
func fishQuote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, "'", `\'`).Replace(s) + "'"
}

func fishCompletion() string {
	var b strings.Builder
	b.WriteString("# fish completion for cgfreeze (cgfreeze completion fish)\ncomplete -c cgfreeze -f\n")
	names := strings.Join(commandNames(), " ")
	for _, c := range commands {
		fmt.Fprintf(&b, "complete -c cgfreeze -n 'not __fish_seen_subcommand_from %s' -a %s -d %s\n", names, c.name, fishQuote(c.summary))
	}
	for _, cmd := range append(targetCommands, "version") {
		cond := "__fish_seen_subcommand_from " + cmd
		if cmd == "freeze" {
			// The default command: no command word, or freeze.
			cond = "not __fish_seen_subcommand_from " + strings.Join(slicesWithout(commandNames(), "freeze"), " ")
		}
		commandFlags(cmd).VisitAll(func(f *pflag.Flag) {
			fmt.Fprintf(&b, "complete -c cgfreeze -n %s -l %s", fishQuote(cond), f.Name)
			if f.Shorthand != "" {
				fmt.Fprintf(&b, " -s %s", f.Shorthand)
			}
			if f.Value.Type() != "bool" && f.NoOptDefVal == "" {
				switch v := strings.Join(flagValues[f.Name], " "); v {
				case "<dir>":
					b.WriteString(" -r -F")
				case "<pid>":
					b.WriteString(" -r -a '(__fish_complete_pids)'")
				case "":
					b.WriteString(" -r")
				default:
					fmt.Fprintf(&b, " -r -a %s", fishQuote(v))
				}
			} else if f.NoOptDefVal != "" {
				fmt.Fprintf(&b, " -a %s", fishQuote(strings.Join(flagValues[f.Name], " ")))
			}
			fmt.Fprintf(&b, " -d %s\n", fishQuote(f.Usage))
		})
	}
	fmt.Fprintf(&b, "complete -c cgfreeze -n '__fish_seen_subcommand_from completion' -a %s\n", fishQuote(strings.Join(completionShells, " ")))
	return b.String()
}

func slicesWithout(s []string, drop string) []string {
	var out []string
	for _, x := range s {
		if x != drop {
			out = append(out, x)
		}
	}
	return out
}

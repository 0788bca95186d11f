#!/usr/bin/env bash
# The processes of the local stack that `make run` starts and `make stop` stops, sourced by both.
# Each has a pid file `$RUN_HOME/NAME.pid`: its pid, then the command line it was started with.
# A pid counts as ours only while that process still runs that command line (pids are recycled).

RUN_HOME="${RUN_HOME:-.run}"
[[ "$RUN_HOME" == /* ]] || RUN_HOME="$PWD/$RUN_HOME"
# How messages name it: relative to the project when inside it.
RUN_HOME_SHOWN="${RUN_HOME#"$PWD/"}"
# Written when `make run` started the local broker itself: what `make stop` needs to stop it.
RUN_BROKER_RECORD="$RUN_HOME/broker.started"

# The pid of stack process NAME if it is still the process we started; empty otherwise.
stack_pid() {
  local file="$RUN_HOME/$1.pid" pid command
  [[ -f "$file" ]] || return 0
  pid="$(sed -n 1p "$file")"
  command="$(sed -n 2p "$file")"
  [[ "$pid" =~ ^[0-9]+$ && -n "$command" ]] && kill -0 "$pid" 2>/dev/null || return 0
  if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$command"; then
    echo "$pid"
  fi
}

# Starts NAME in the background, in a session of its own (it outlives the shell and a Ctrl-C
# of `make run`), with its output in $RUN_HOME/NAME.log, and records its pid file.
stack_start() {
  local name="$1"
  shift
  mkdir -p "$RUN_HOME"
  setsid "$@" </dev/null >"$RUN_HOME/$name.log" 2>&1 &
  printf '%s\n%s\n' "$!" "$*" >"$RUN_HOME/$name.pid"
}

# "pid 1234 (python3 -m omnid.cli worker ...)" for whatever listens on local TCP port $1; empty
# when nothing does.
port_holder() {
  local port="$1" pid
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || return 0
  pid="$(ss -ltnpH "sport = :$port" 2>/dev/null | grep -o 'pid=[0-9]*' | head -n 1 | cut -d= -f2)"
  if [[ -n "$pid" ]]; then
    echo "pid $pid ($(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | cut -c1-120))"
  else
    echo "a process this user cannot see"
  fi
}

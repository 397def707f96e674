# shellcheck shell=bash
# Shared helpers for Gridsync's scripts. Source it; do not run it.
#
#   log MSG...        print "==> MSG" on stdout
#   warn MSG...       print "warning: MSG" on stderr
#   die MSG...        print "error: MSG" on stderr and exit 1
#   apt_install PKG...  install Debian packages (as root with apt-get), or die
#                     saying what to install by hand
#   on_exit CMD       run CMD (a string, eval'd) when the script exits, for any
#                     reason: success, failure under `set -e`, Ctrl-C, SIGTERM,
#                     SIGHUP. Hooks run last-registered first. This file owns
#                     the EXIT/INT/TERM/HUP traps: register cleanup here rather
#                     than with `trap`, or you will replace the other hooks.

[[ -n ${_GRIDSYNC_COMMON_SH:-} ]] && return 0
_GRIDSYNC_COMMON_SH=1

log() { printf '==> %s\n' "$*"; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

apt_install() {
  [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 ||
    die "$* is missing and cannot be installed here (needs root and apt-get): install it by hand"
  log "installing $* with apt-get"
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null ||
      die "apt-get could not install $*"
  fi
}

_GRIDSYNC_EXIT_HOOKS=()
_GRIDSYNC_TRAPS_SET=

_gridsync_run_exit_hooks() {
  local rc=$? i
  set +e
  for ((i = ${#_GRIDSYNC_EXIT_HOOKS[@]} - 1; i >= 0; i--)); do
    eval "${_GRIDSYNC_EXIT_HOOKS[i]}"
  done
  _GRIDSYNC_EXIT_HOOKS=()
  exit "$rc"
}

on_exit() {
  _GRIDSYNC_EXIT_HOOKS+=("$1")
  if [[ -z $_GRIDSYNC_TRAPS_SET ]]; then
    _GRIDSYNC_TRAPS_SET=1
    trap _gridsync_run_exit_hooks EXIT
    # Turn fatal signals into a normal exit so the EXIT trap runs.
    trap 'exit 130' INT
    trap 'exit 143' TERM
    trap 'exit 129' HUP
  fi
}

#!/bin/sh
# Put a cdp replication target into service on a fresh Debian host, in one command:
#
#   sudo deploy/install.sh            # from a checkout of this repository
#   deploy/install.sh --dry-run       # print every step, change nothing (no root needed)
#   sudo deploy/install.sh --data-group=NAME   # let group NAME read the data at rest
#
# Creates the system user `cdp`, /var/lib/cdp (0700; with --data-group 2750 owned by
# that group, which is created if missing and given to `cdp`), /etc/cdp/target.yaml from
# deploy/target.example.yaml (kept if present), the target's certificates in /etc/cdp/tls
# (kept if present), a virtualenv in /opt/cdp with this repository installed, the systemd
# units, and starts cdp-target.service. Re-running it upgrades cdp and keeps the config.
set -eu

DRY_RUN=0
DATA_GROUP=
PREFIX=/opt/cdp
REPO=$(CDPATH= cd -- "$(dirname -- "$0")/.." && pwd)
for arg in "$@"; do
    case "$arg" in
        --dry-run) DRY_RUN=1 ;;
        --prefix=*) PREFIX=${arg#--prefix=} ;;
        --data-group=?*) DATA_GROUP=${arg#--data-group=} ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "install.sh: unknown argument $arg (try --help)" >&2; exit 2 ;;
    esac
done

run() {
    # Print a step; run it unless --dry-run.
    echo "+ $*"
    if [ "$DRY_RUN" = 0 ]; then "$@"; fi
}

missing() {
    # True when path $1 does not exist (always true in a dry run: every step is shown).
    [ "$DRY_RUN" = 1 ] || [ ! -e "$1" ]
}

if [ "$DRY_RUN" = 0 ] && [ "$(id -u)" != 0 ]; then
    echo "install.sh: run as root (or with --dry-run to see the steps)" >&2
    exit 2
fi

run apt-get update
run apt-get install -y --no-install-recommends python3 python3-venv
if ! id cdp >/dev/null 2>&1; then
    run useradd --system --user-group --home-dir /var/lib/cdp --shell /usr/sbin/nologin cdp
fi
if [ -n "$DATA_GROUP" ]; then
    # Folders 2750 (setgid: what the target creates inherits the group), files 0640. Done
    # here as root: the unit's RestrictSUIDSGID= keeps the target from setting setgid bits.
    if ! getent group "$DATA_GROUP" >/dev/null 2>&1; then
        run groupadd --system "$DATA_GROUP"
    fi
    run usermod -a -G "$DATA_GROUP" cdp
    run install -d -m 2750 -o cdp -g "$DATA_GROUP" /var/lib/cdp
    run chgrp -R "$DATA_GROUP" /var/lib/cdp
    run find /var/lib/cdp -type d -exec chmod 2750 {} +
    run find /var/lib/cdp -type f -exec chmod 0640 {} +
else
    run install -d -m 0700 -o cdp -g cdp /var/lib/cdp
fi
run install -d -m 0750 -o root -g cdp /etc/cdp /etc/cdp/plans
if missing /etc/cdp/target.yaml; then
    run install -m 0640 -o root -g cdp "$REPO/deploy/target.example.yaml" /etc/cdp/target.yaml
    if [ -n "$DATA_GROUP" ]; then
        run sh -c "echo 'data_group: $DATA_GROUP' >> /etc/cdp/target.yaml"
    fi
elif [ -n "$DATA_GROUP" ]; then
    echo "install.sh: /etc/cdp/target.yaml is kept; set 'data_group: $DATA_GROUP' in it" >&2
fi
run python3 -m venv "$PREFIX"
run "$PREFIX/bin/pip" install --upgrade "$REPO"
run ln -sf "$PREFIX/bin/cdp" /usr/local/bin/cdp
if missing /etc/cdp/tls; then
    run /usr/local/bin/cdp certs init /etc/cdp/tls
    run chgrp -R cdp /etc/cdp/tls/target
    run chmod -R g+rX /etc/cdp/tls/target
fi
run /usr/local/bin/cdp target config check /etc/cdp/target.yaml
run install -m 0644 "$REPO/deploy/systemd/cdp-target.service" \
    "$REPO/deploy/systemd/cdp-failover@.service" \
    "$REPO/deploy/systemd/cdp-verify-scheduler.service" /etc/systemd/system/
run systemctl daemon-reload
run systemctl enable --now cdp-target.service
echo "cdp target installed: systemctl status cdp-target; journalctl -u cdp-target" \
     "; operator certificates are in /etc/cdp/tls/operators"

#!/bin/sh
# Boots one localcloud machine: systemd as PID 1 on an overlay of this host's root.
#
#   machine-init.sh enter    host side: record its PID in LC_PIDFILE (exec keeps it: it becomes
#                            the unshare process), join the machine's cgroups (LC_CGROUP_PROCS),
#                            then re-run this script as "boot" in fresh namespaces, inside the
#                            network namespace LC_NETNS that the backend has already wired.
#   machine-init.sh boot     PID 1 of the new PID namespace: build the root, pivot, exec systemd.
#
# Every input is an LC_* environment variable set by localcloud.machine_runtime; mounts that
# need a list (binds) come from the file LC_BINDS, one "source<TAB>target<TAB>ro|rw" per line.
set -eu

enter() {
    echo $$ >"$LC_PIDFILE"
    for procs in $LC_CGROUP_PROCS; do
        echo $$ >"$procs"
    done
    # What systemd gets on a real host (dbus asks for 65536); hosts without CAP_SYS_RESOURCE
    # keep their own limit.
    ulimit -n 524288 2>/dev/null || true
    # --propagation slave: the host's attached-disk mounts still propagate in, nothing leaks out.
    exec nsenter --net="$LC_NETNS" -- \
        unshare --fork --pid --mount --uts --ipc --cgroup --propagation slave -- \
        /bin/sh "$0" boot
}

mount_proc() {
    mount -t proc -o nosuid,nodev,noexec proc "$R/proc"
    # Kernel settings stay the host's: /proc/sys is read-only except the per-namespace net tree.
    mount --bind "$R/proc/sys" "$R/proc/sys"
    mount -o remount,bind,ro "$R/proc/sys"
    mount --bind "$R/proc/sys/net" "$R/proc/sys/net"
    mount -o remount,bind,rw "$R/proc/sys/net"
    for entry in sysrq-trigger irq bus; do
        [ -e "$R/proc/$entry" ] || continue
        mount --bind "$R/proc/$entry" "$R/proc/$entry"
        mount -o remount,bind,ro "$R/proc/$entry"
    done
}

mount_sys() {
    mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$R/sys"
    mount -t tmpfs -o nosuid,nodev,noexec,mode=755 cgroup "$R/sys/fs/cgroup"
    # After unshare --cgroup each hierarchy shows the machine's own cgroup as its root.
    for spec in $LC_CGROUP_MOUNTS; do
        name=${spec%%=*}
        opts=${spec#*=}
        mkdir "$R/sys/fs/cgroup/$name"
        if [ "$opts" = cgroup2 ]; then
            mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 "$R/sys/fs/cgroup/$name"
        else
            mount -t cgroup -o "nosuid,nodev,noexec,$opts" cgroup "$R/sys/fs/cgroup/$name"
        fi
    done
}

mount_dev() {
    mount -t tmpfs -o nosuid,mode=755,size=4m dev "$R/dev"
    d=$R/dev
    mknod -m 666 "$d/null" c 1 3
    mknod -m 666 "$d/zero" c 1 5
    mknod -m 666 "$d/full" c 1 7
    mknod -m 666 "$d/random" c 1 8
    mknod -m 666 "$d/urandom" c 1 9
    mknod -m 666 "$d/tty" c 5 0
    mkdir -m 755 "$d/net"
    mknod -m 666 "$d/net/tun" c 10 200
    mkdir -m 755 "$d/pts" "$d/disk"
    mkdir -m 1777 "$d/shm"
    mkdir "$d/mqueue"
    mount -t devpts -o newinstance,nosuid,noexec,gid=5,mode=620,ptmxmode=666 devpts "$d/pts"
    ln -s pts/ptmx "$d/ptmx"
    mount -t tmpfs -o nosuid,nodev,mode=1777 shm "$d/shm"
    mount -t mqueue -o nosuid,nodev,noexec mqueue "$d/mqueue"
    ln -s /proc/self/fd "$d/fd"
    ln -s /proc/self/fd/0 "$d/stdin"
    ln -s /proc/self/fd/1 "$d/stdout"
    ln -s /proc/self/fd/2 "$d/stderr"
    # The serial port: a plain host file, so nothing reaches the host's console. Writers must
    # append (guest tools do). kubelet wants a /dev/kmsg: the host's would be shared and a
    # link to the console would let journald overwrite it, so it reads nothing instead.
    touch "$d/console"
    mount --bind "$LC_CONSOLE" "$d/console"
    ln -s null "$d/kmsg"
}

mount_binds() {
    tab=$(printf '\t')
    while IFS=$tab read -r src dst mode; do
        [ -n "$src" ] || continue
        if [ -d "$src" ]; then mkdir -p "$R$dst"; else [ -e "$R$dst" ] || touch "$R$dst"; fi
        mount --rbind "$src" "$R$dst"
        if [ "$mode" = ro ]; then mount -o remount,bind,ro "$R$dst"; fi
    done <"$LC_BINDS"
}

boot() {
    R=$LC_ROOT
    mount -t overlay overlay -o "lowerdir=/,upperdir=$LC_UPPER,workdir=$LC_WORK" "$R"
    mount_proc
    mount_sys
    mount_dev
    mount -t tmpfs -o nosuid,nodev,mode=755 run "$R/run"
    mount -t tmpfs -o nosuid,nodev,mode=1777 tmp "$R/tmp"
    mount_binds
    hostname "$LC_HOSTNAME"
    mkdir "$R/run/.oldroot"
    cd "$R"
    pivot_root . run/.oldroot
    cd /
    umount -l /run/.oldroot
    rmdir /run/.oldroot
    # systemd leaves / private in a container; kubelet and containerd need shared propagation.
    mount --make-rshared /
    exec env -i container=localcloud PATH=/usr/sbin:/usr/bin:/sbin:/bin /lib/systemd/systemd
}

case "${1:-}" in
enter) enter ;;
boot) boot ;;
*) echo "usage: $0 enter|boot" >&2; exit 2 ;;
esac

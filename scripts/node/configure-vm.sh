#!/usr/bin/env bash
# Configures a kube-up VM (master or node) from its instance metadata.
#
#   configure-vm.sh           at boot (GCE startup-script, AWS user-data)
#   configure-vm.sh --push    from kube-push over SSH: re-read kube-env, fetch changed artifacts,
#                             re-run highstate; the exit status and the failed states say how it went
#
# Steps: read kube-env -> (master) mount the persistent disk -> (node) wait for the pod CIDR ->
# download the release artifacts, checking sha256 -> unpack them -> write salt config, grains and
# pillar -> salt-call --local state.highstate. Every step is idempotent and logs "kube-up: ..."
# to stdout (the serial console); a failure ends with "kube-up: FAILED at <step>".
#
# Paths and endpoints come from KUBE_* environment variables so tests can run the functions in a
# temporary root against local HTTP servers (source this file; main runs only when executed).
#
# Metadata comes from GCE's metadata server (localcloud speaks it too) or, where that is absent,
# from EC2's instance metadata service (IMDSv2): see the "AWS" functions below.
set -o errexit -o nounset -o pipefail

KUBE_ROOT=${KUBE_ROOT:-}
KUBE_METADATA_URL=${KUBE_METADATA_URL:-http://metadata.google.internal/computeMetadata/v1}
# URLs under this prefix are GCS objects: they need the VM service account's OAuth token.
KUBE_GCS_URL_PREFIX=${KUBE_GCS_URL_PREFIX:-https://storage.googleapis.com/}
KUBE_PYTHON=${KUBE_PYTHON:-/usr/bin/python3}
KUBE_CURL_RETRIES=${KUBE_CURL_RETRIES:-8}
KUBE_CURL_RETRY_DELAY=${KUBE_CURL_RETRY_DELAY:-3}
KUBE_ENV_TIMEOUT=${KUBE_ENV_TIMEOUT:-600}
KUBE_POD_CIDR_TIMEOUT=${KUBE_POD_CIDR_TIMEOUT:-900}
KUBE_POD_CIDR_POLL=${KUBE_POD_CIDR_POLL:-60}
KUBE_PD_TIMEOUT=${KUBE_PD_TIMEOUT:-120}
# gce or aws; empty: gce if the GCE metadata server answers, else aws.
KUBE_METADATA_SOURCE=${KUBE_METADATA_SOURCE:-}
KUBE_IMDS_URL=${KUBE_IMDS_URL:-http://169.254.169.254}
KUBE_IMDS_POLL=${KUBE_IMDS_POLL:-5}

INSTALL_DIR=${KUBE_ROOT}/var/cache/kubernetes-install
SALT_HOME=${KUBE_ROOT}/opt/kube-salt
SALT_CONF_DIR=${KUBE_ROOT}/etc/kube-salt
SALT_TREE=${KUBE_ROOT}/srv/salt
PILLAR_DIR=${KUBE_ROOT}/srv/pillar
RELEASE_BIN_DIR=${KUBE_ROOT}/opt/kubernetes/server/bin
IMAGES_DIR=${KUBE_ROOT}/opt/kubernetes/images
SCRIPTS_DIR=${KUBE_ROOT}/opt/kube-salt/scripts
MASTER_PD_MOUNT=${KUBE_ROOT}/mnt/master-pd
LOG_DIR=${KUBE_ROOT}/var/log/kube-salt

MASTER_BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kubectl etcd etcdctl)
NODE_BINARIES=(kubelet kube-proxy kubectl)

declare -A KUBE_ENV=()
MODE=boot
CURRENT_STEP=start
IMDS_TOKEN=""
# aws: the staging bucket's URL prefix; downloads under it are signed with the instance role.
AWS_BUCKET_URL=""

log() {
  echo "kube-up: $*"
}

# One line saying what went wrong. stderr, so it is seen even from inside $(...); the console
# gets both streams.
fail() {
  echo "kube-up: error: $*" >&2
  return 1
}

on-exit() {
  local rc=$?
  if ((rc != 0)); then
    echo "kube-up: FAILED at ${CURRENT_STEP}"
  fi
  return "${rc}"
}

step() {
  CURRENT_STEP=$1
  shift
  log "${CURRENT_STEP} ..."
  "$@"
}

is-master() {
  [[ "${KUBE_ENV[KUBERNETES_MASTER]}" == "true" ]]
}

# GET a metadata path (relative to computeMetadata/v1) to stdout; fails on HTTP errors.
metadata-get() {
  curl --fail --silent --show-error --max-time "${2:-30}" \
    -H 'Metadata-Flavor: Google' "${KUBE_METADATA_URL}/$1"
}

# Succeeds when this VM's metadata comes from $1 (gce or aws); decides once, on first use.
metadata-source() {
  if [[ -z "${KUBE_METADATA_SOURCE}" ]]; then
    if curl --silent --output /dev/null --max-time 5 -H 'Metadata-Flavor: Google' \
      "${KUBE_METADATA_URL}/"; then
      KUBE_METADATA_SOURCE=gce
    else
      KUBE_METADATA_SOURCE=aws
    fi
  fi
  [[ "${KUBE_METADATA_SOURCE}" == "$1" ]]
}

# --- AWS: IMDSv2 (a session token from PUT /latest/api/token on every GET), instance tags for
# what kube-up tells a VM, and the instance role's credentials for the private staging bucket.

imds-token() {
  IMDS_TOKEN=$(curl --fail --silent --show-error --max-time 10 -X PUT \
    -H "X-aws-ec2-metadata-token-ttl-seconds: 21600" "${KUBE_IMDS_URL}/latest/api/token") || {
    fail "no IMDSv2 session token from ${KUBE_IMDS_URL}"
    return 1
  }
}

# GET a path under /latest/ (e.g. meta-data/local-ipv4); the token goes on stdin, not in argv.
imds-get() {
  [[ -n "${IMDS_TOKEN}" ]] || imds-token
  curl --fail --silent --show-error --max-time 30 --config - "${KUBE_IMDS_URL}/latest/$1" \
    <<<"header = \"X-aws-ec2-metadata-token: ${IMDS_TOKEN}\""
}

imds-tag() {
  imds-get "meta-data/tags/instance/$1"
}

# curl config signing a GET with the instance role's temporary credentials (SigV4, S3).
aws-auth-config() {
  local role creds region field
  role=$(imds-get meta-data/iam/security-credentials/ | head -n1) || {
    fail "this instance has no IAM role; kube-up gives each VM one"
    return 1
  }
  creds=$(imds-get "meta-data/iam/security-credentials/${role}") || return 1
  region=$(imds-get meta-data/placement/region) || return 1
  declare -A cred=()
  for field in AccessKeyId SecretAccessKey Token; do
    cred[${field}]=$(sed -n "s/.*\"${field}\"[[:space:]]*:[[:space:]]*\"\([^\"]*\)\".*/\1/p" <<<"${creds}")
    [[ -n "${cred[${field}]}" ]] || {
      fail "the credentials of role ${role} lack ${field}"
      return 1
    }
  done
  printf 'aws-sigv4 = "aws:amz:%s:s3"\n' "${region}"
  printf 'user = "%s:%s"\n' "${cred[AccessKeyId]}" "${cred[SecretAccessKey]}"
  printf 'header = "x-amz-security-token: %s"\n' "${cred[Token]}"
  printf 'header = "x-amz-content-sha256: UNSIGNED-PAYLOAD"\n'
}

# kube-env is the object the instance's kube-up-kube-env tag names; its bucket holds the release.
aws-fetch-kube-env() {
  local url auth
  url=$(imds-tag kube-up-kube-env) || return 1
  auth=$(aws-auth-config) || return 1
  curl --fail --silent --show-error --max-time 60 --config - "${url}" <<<"${auth}"
}

# The master's etcd volume, by the id kube-up tags the instance with (Nitro NVMe naming).
aws-master-pd-device() {
  local volume
  volume=$(imds-tag kube-up-master-pd) || {
    fail "no kube-up-master-pd tag on this instance"
    return 1
  }
  echo "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_${volume//-/}"
}

# kube-env's lines are KEY: 'value' (cluster/kube_env.py writes them), so no YAML library is
# needed; anything else is rejected rather than guessed at.
parse-kube-env() {
  local file=$1 line key value n=0
  KUBE_ENV=()
  while IFS= read -r line || [[ -n "${line}" ]]; do
    n=$((n + 1))
    [[ -z "${line}" ]] && continue
    if [[ ! "${line}" =~ ^([A-Z][A-Z0-9_]*):\ \'(([^\']|\'\')*)\'$ ]]; then
      fail "kube-env line ${n} is not KEY: 'value'; re-render kube-env with cluster.kube_env"
      return 1
    fi
    key=${BASH_REMATCH[1]}
    value=${BASH_REMATCH[2]//\'\'/\'}
    KUBE_ENV[${key}]=${value}
  done <"${file}"
}

require-kube-env() {
  local key missing=()
  for key in "$@"; do
    [[ -n "${KUBE_ENV[${key}]:-}" ]] || missing+=("${key}")
  done
  if ((${#missing[@]})); then
    fail "kube-env lacks ${missing[*]}; re-render it with cluster.kube_env"
    return 1
  fi
}

fetch-kube-env() {
  if metadata-source aws; then
    aws-fetch-kube-env
  else
    metadata-get instance/attributes/kube-env
  fi
}

read-kube-env() {
  local file=${INSTALL_DIR}/kube-env.yaml deadline=$((SECONDS + KUBE_ENV_TIMEOUT))
  mkdir -p "${INSTALL_DIR}"
  chmod 0700 "${INSTALL_DIR}"
  if metadata-source aws; then
    imds-token
  fi
  until (umask 077 && fetch-kube-env >"${file}.new"); do
    if ((SECONDS >= deadline)); then
      rm -f "${file}.new"
      fail "no kube-env in the instance metadata after ${KUBE_ENV_TIMEOUT}s"
      return 1
    fi
    log "waiting for kube-env in the metadata"
    sleep 3
  done
  mv "${file}.new" "${file}"
  if metadata-source aws; then
    AWS_BUCKET_URL=$(imds-tag kube-up-kube-env)
    AWS_BUCKET_URL=${AWS_BUCKET_URL%/kube-env/*}/
  fi
  parse-kube-env "${file}"
  require-kube-env KUBERNETES_MASTER KUBERNETES_MASTER_IP SERVER_BINARY_TAR_URL \
    SERVER_BINARY_TAR_HASH SALT_TAR_URL SALT_TAR_HASH SALT_RUNTIME_TAR_URL SALT_RUNTIME_TAR_HASH
  if ! is-master; then
    require-kube-env NODE_IMAGES_TAR_URL NODE_IMAGES_TAR_HASH
  elif metadata-source aws; then
    KUBE_ENV[MASTER_PD_DEVICE]=$(aws-master-pd-device)
  fi
  log "kube-env read: cluster ${KUBE_ENV[CLUSTER_NAME]:-?}, $(is-master && echo master || echo node)"
}

# The master's disk: a block device on GCE (formatted on first use), a directory on localcloud.
mount-master-pd() {
  local device=${KUBE_ENV[MASTER_PD_DEVICE]:-} deadline=$((SECONDS + KUBE_PD_TIMEOUT))
  [[ -n "${device}" ]] || {
    fail "kube-env lacks MASTER_PD_DEVICE"
    return 1
  }
  if [[ -L "${MASTER_PD_MOUNT}" ]] || mountpoint -q "${MASTER_PD_MOUNT}" 2>/dev/null; then
    log "master disk already at ${MASTER_PD_MOUNT}"
  else
    until [[ -d "${device}" || -b "${device}" ]]; do
      if ((SECONDS >= deadline)); then
        fail "master disk ${device} did not appear in ${KUBE_PD_TIMEOUT}s; is it attached?"
        return 1
      fi
      sleep 2
    done
    mkdir -p "$(dirname "${MASTER_PD_MOUNT}")"
    if [[ -d "${device}" ]]; then
      rmdir "${MASTER_PD_MOUNT}" 2>/dev/null || true
      ln -s "${device}" "${MASTER_PD_MOUNT}"
    else
      if ! blkid "${device}" >/dev/null 2>&1; then
        log "formatting ${device} (first boot)"
        mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "${device}"
      fi
      mkdir -p "${MASTER_PD_MOUNT}"
      mount -o defaults,discard "${device}" "${MASTER_PD_MOUNT}"
    fi
  fi
  mkdir -p "${MASTER_PD_MOUNT}/var/etcd"
  chmod 0700 "${MASTER_PD_MOUNT}/var/etcd"
}

# kube-up sets the pod-cidr attribute once the node's instance exists (nodes come from a
# managed instance group with generated names); block on metadata changes until it is there.
# Nodes created in bulk share one template, so kube-up lists every node's pod CIDR in its
# pod-cidrs attribute, one "name cidr" per line; an instance's own pod-cidr attribute wins.
pod-cidr-from-map() {
  local name
  name=$(metadata-get instance/name) || return 1
  metadata-get instance/attributes/pod-cidrs |
    awk -v name="${name}" '$1 == name { print $2; found = 1 } END { exit !found }'
}

wait-pod-cidr() {
  local deadline=$((SECONDS + KUBE_POD_CIDR_TIMEOUT)) cidr=""
  while true; do
    if metadata-source aws; then
      cidr=$(imds-tag kube-up-pod-cidr 2>/dev/null) || cidr=""
    else
      cidr=$(metadata-get instance/attributes/pod-cidr 2>/dev/null) || cidr=$(pod-cidr-from-map) || cidr=""
    fi
    if [[ -n "${cidr}" ]]; then
      break
    fi
    if ((SECONDS >= deadline)); then
      fail "no pod-cidr in the instance metadata after ${KUBE_POD_CIDR_TIMEOUT}s; kube-up assigns it"
      return 1
    fi
    log "waiting for metadata pod-cidr"
    if metadata-source aws; then
      # IMDS has no change notification: poll the instance tag.
      sleep "${KUBE_IMDS_POLL}"
    else
      metadata-get "instance/attributes/?recursive=true&wait_for_change=true&timeout_sec=${KUBE_POD_CIDR_POLL}" \
        $((KUBE_POD_CIDR_POLL + 10)) >/dev/null 2>&1 || sleep 1
    fi
  done
  if [[ ! "${cidr}" =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}/[0-9]{1,2}$ ]]; then
    fail "metadata pod-cidr '${cidr}' is not an IPv4 CIDR"
    return 1
  fi
  POD_CIDR=${cidr}
  log "pod CIDR ${POD_CIDR}"
}

# The address other VMs reach this one at: the metadata's, else the source of the route to the
# master.
detect-node-ip() {
  if metadata-source aws; then
    NODE_IP=$(imds-get meta-data/local-ipv4 2>/dev/null) || NODE_IP=""
  else
    NODE_IP=$(metadata-get instance/network-interfaces/0/ip 2>/dev/null) || NODE_IP=""
  fi
  if [[ -z "${NODE_IP}" ]]; then
    NODE_IP=$(ip -4 route get "${KUBE_ENV[KUBERNETES_MASTER_IP]}" 2>/dev/null |
      sed -n 's/.* src \([0-9.]*\).*/\1/p')
  fi
  log "node IP ${NODE_IP:-unknown}"
}

# curl's config on stdin carries the bearer token for GCS URLs, so it never shows in argv.
auth-config-for() {
  local url=$1 token_json token
  if [[ -n "${AWS_BUCKET_URL}" && "${url}" == "${AWS_BUCKET_URL}"* ]]; then
    aws-auth-config
    return
  fi
  [[ "${url}" == "${KUBE_GCS_URL_PREFIX}"* ]] || return 0
  token_json=$(metadata-get instance/service-accounts/default/token) || {
    fail "no OAuth token from the metadata server for ${url}"
    return 1
  }
  token=$(sed -n 's/.*"access_token"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' <<<"${token_json}")
  [[ -n "${token}" ]] || {
    fail "the metadata server's token answer has no access_token"
    return 1
  }
  printf 'header = "Authorization: Bearer %s"\n' "${token}"
}

sha256-of() {
  sha256sum "$1" | cut -d' ' -f1
}

# download-artifact KEY: fetch ${KEY}_URL into INSTALL_DIR unless the file there already has
# ${KEY}_HASH; a file with another hash is never left in place.
# artifact-name KEY: the file name of ${KEY}_URL, which is also its name in INSTALL_DIR.
artifact-name() {
  local url=${KUBE_ENV[${1}_URL]}
  url=${url%%\?*}
  echo "${url##*/}"
}

download-artifact() {
  local key=$1
  local url=${KUBE_ENV[${key}_URL]} want=${KUBE_ENV[${key}_HASH]} name got auth
  name=$(artifact-name "${key}")
  local dest=${INSTALL_DIR}/${name}
  if [[ -f "${dest}" && "$(sha256-of "${dest}")" == "${want}" ]]; then
    log "have ${name} (sha256 ${want:0:12})"
    return 0
  fi
  auth=$(auth-config-for "${url}")
  log "downloading ${name}"
  rm -f "${dest}.partial"
  if ! curl --fail --silent --show-error --location --connect-timeout 20 \
    --retry "${KUBE_CURL_RETRIES}" --retry-delay "${KUBE_CURL_RETRY_DELAY}" --retry-connrefused \
    --config - -o "${dest}.partial" "${url}" <<<"${auth}"; then
    rm -f "${dest}.partial"
    fail "could not download ${url}"
    return 1
  fi
  got=$(sha256-of "${dest}.partial")
  if [[ "${got}" != "${want}" ]]; then
    rm -f "${dest}.partial"
    fail "${name} has sha256 ${got}, kube-env expects ${want}: the staged file is corrupt or stale, stage the release again (kube-up or kube-push)"
    return 1
  fi
  mv "${dest}.partial" "${dest}"
}

download-artifacts() {
  download-artifact SERVER_BINARY_TAR
  download-artifact SALT_TAR
  download-artifact SALT_RUNTIME_TAR
  if ! is-master; then
    download-artifact NODE_IMAGES_TAR
  fi
}

# replace-dir SRC DEST: move SRC into DEST's place, so readers see the old or the new tree.
replace-dir() {
  local src=$1 dest=$2
  mkdir -p "$(dirname "${dest}")"
  rm -rf "${dest}.old"
  if [[ -e "${dest}" ]]; then
    mv "${dest}" "${dest}.old"
  fi
  mv "${src}" "${dest}"
  rm -rf "${dest}.old"
}

# install-tree KEY SUBDIR DEST [MEMBER...]: put SUBDIR of the verified artifact KEY at DEST
# (extracting only the MEMBERs, default SUBDIR), unless DEST.sha256 says it is already there.
# Extraction goes to a staging dir first, so a failure leaves nothing half-installed.
install-tree() {
  local key=$1 subdir=$2 dest=$3
  shift 3
  local members=("$@") want=${KUBE_ENV[${key}_HASH]} staging=${INSTALL_DIR}/unpack-${key}
  ((${#members[@]})) || members=("${subdir}")
  if [[ -e "${dest}" && -f "${dest}.sha256" && "$(<"${dest}.sha256")" == "${want}" ]]; then
    return 0
  fi
  rm -rf "${staging}"
  mkdir -p "${staging}"
  # --touch: the release tarballs carry fixed mtimes, and salt's file server takes a file with
  # an unchanged mtime for unchanged.
  if ! tar -xzf "${INSTALL_DIR}/$(artifact-name "${key}")" --touch -C "${staging}" "${members[@]}"; then
    rm -rf "${staging}"
    fail "could not unpack ${subdir} from $(artifact-name "${key}")"
    return 1
  fi
  replace-dir "${staging}/${subdir}" "${dest}"
  rm -rf "${staging}"
  echo "${want}" >"${dest}.sha256"
  log "installed ${dest}"
}

install-artifacts() {
  local binaries
  if is-master; then binaries=("${MASTER_BINARIES[@]}"); else binaries=("${NODE_BINARIES[@]}"); fi
  install-tree SERVER_BINARY_TAR kubernetes/server/bin "${RELEASE_BIN_DIR}" \
    "${binaries[@]/#/kubernetes/server/bin/}"
  install-tree SALT_TAR kubernetes/saltbase/salt "${SALT_TREE}"
  install-tree SALT_TAR kubernetes/saltbase/scripts "${SCRIPTS_DIR}"
  install-tree SALT_RUNTIME_TAR salt-runtime "${SALT_HOME}/salt-runtime"
  if ! is-master; then
    install-tree NODE_IMAGES_TAR images "${IMAGES_DIR}"
  fi
}

# Salt reads only this directory: without root_dir, cachedir, pki_dir and log_file it would use
# /etc/salt and /var/log/salt. file_client local = masterless, no minion daemon, no open port.
write-salt-config() {
  mkdir -p "${SALT_CONF_DIR}" "${LOG_DIR}"
  chmod 0700 "${SALT_CONF_DIR}" "${LOG_DIR}"
  cat >"${SALT_CONF_DIR}/minion" <<EOF
id: $(hostname)
file_client: local
root_dir: ${KUBE_ROOT:-/}
file_roots:
  base:
    - ${SALT_TREE}
pillar_roots:
  base:
    - ${PILLAR_DIR}
cachedir: ${KUBE_ROOT}/var/cache/kube-salt
pki_dir: ${SALT_CONF_DIR}/pki
sock_dir: ${KUBE_ROOT}/run/kube-salt
log_file: ${LOG_DIR}/minion.log
log_level_logfile: info
enable_fqdns_grains: False
minion_id_caching: False
state_output: changes
EOF
}

write-grains() {
  {
    echo "cloud: ${KUBE_METADATA_SOURCE:-gce}"
    echo "roles:"
    if is-master; then
      echo "  - kubernetes-master"
    else
      echo "  - kubernetes-pool"
      echo "cbr-cidr: '${POD_CIDR}'"
    fi
    if [[ -n "${NODE_IP:-}" ]]; then
      echo "node_ip: '${NODE_IP}'"
    fi
    # Cluster DNS forwards outside names only to a resolver this VM has.
    if grep -qs '^nameserver[[:space:]]' "${KUBE_ROOT}/etc/resolv.conf"; then
      echo "dns_upstream: true"
    else
      echo "dns_upstream: false"
    fi
  } >"${SALT_CONF_DIR}/grains"
}

# The pillar is kube-env itself (its lines are valid YAML); it holds keys, so root-only.
write-pillar() {
  mkdir -p "${PILLAR_DIR}"
  chmod 0700 "${PILLAR_DIR}"
  install -m 0600 "${INSTALL_DIR}/kube-env.yaml" "${PILLAR_DIR}/kube-env.sls"
  printf "base:\n  '*':\n    - kube-env\n" >"${PILLAR_DIR}/top.sls"
}

salt-call() {
  PYTHONPATH=${SALT_HOME}/salt-runtime "${KUBE_PYTHON}" -c \
    'import sys; from salt.scripts import salt_call; sys.argv[0] = "salt-call"; salt_call()' \
    "$@"
}

# Names each failed state (id, function, first line of its comment) from salt's JSON result.
report-failed-states() {
  "${KUBE_PYTHON}" - "$1" <<'EOF'
import json, sys
try:
    with open(sys.argv[1]) as f:
        result = json.load(f).get("local", {})
except (OSError, ValueError) as exc:
    print(f"kube-up: no highstate result to read ({exc})")
    sys.exit(0)
if isinstance(result, list):  # render errors come as a list of messages
    for message in result:
        print(f"kube-up: salt error: {str(message).splitlines()[0]}")
    sys.exit(0)
for key, state in sorted(result.items(), key=lambda kv: kv[1].get("__run_num__", 0)):
    if state.get("result") is False:
        parts = key.split("_|-")  # module_|-id_|-name_|-function
        module, function = parts[0], parts[-1]
        comment = (str(state.get("comment") or "").strip().splitlines() or [""])[0][:300]
        print(f"kube-up: state failed: {state.get('__id__', key)} ({module}.{function}): {comment}")
EOF
}

run-highstate() {
  local result=${LOG_DIR}/highstate.json rc=0
  (
    umask 077
    salt-call --local -c "${SALT_CONF_DIR}" --retcode-passthrough --log-level=warning \
      --out=json --out-file="${result}" state.highstate >>"${LOG_DIR}/highstate.log" 2>&1
  ) || rc=$?
  if ((rc != 0)); then
    report-failed-states "${result}"
    fail "salt highstate exited ${rc}; details in ${LOG_DIR}/highstate.log and ${result}"
    return 1
  fi
  log "highstate applied"
}

main() {
  case "${1:-}" in
  "") MODE=boot ;;
  --push) MODE=push ;;
  *)
    echo "usage: $0 [--push]" >&2
    return 2
    ;;
  esac
  trap on-exit EXIT
  umask 022
  mkdir -p "${INSTALL_DIR}"
  # One run at a time: a kube-push may arrive while the boot-time run is still going.
  exec 9>"${INSTALL_DIR}/.lock"
  flock 9
  log "node configuration starting (${MODE})"
  step read-kube-env read-kube-env
  if is-master; then
    step mount-master-pd mount-master-pd
  else
    step wait-pod-cidr wait-pod-cidr
  fi
  step detect-node-ip detect-node-ip
  step download download-artifacts
  step unpack install-artifacts
  step salt-config write-salt-config
  step grains write-grains
  step pillar write-pillar
  step highstate run-highstate
  CURRENT_STEP="done"
  log "node configuration done"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  main "$@"
fi

#!/bin/sh
# Usage: image-current.sh REF ARCHIVE
# Exits 0 when containerd's k8s.io namespace holds REF at the manifest digest that the OCI
# ARCHIVE carries, so the import runs once per image content (and again after kube-push).
set -eu
ref=$1
archive=$2
want=$(tar -xOf "$archive" index.json |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["manifests"][0]["digest"])')
have=$(ctr -n k8s.io images ls "name==$ref" | awk 'NR > 1 { print $3 }')
[ -n "$want" ] && [ "$want" = "$have" ]

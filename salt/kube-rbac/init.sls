{#- RBAC the cluster's fixed identities need, applied once the apiserver answers. kubectl runs
    as the admin client (O=system:masters) against the local apiserver. #}
{%- from "map.jinja" import kube with context %}
{%- from "kubeconfig.jinja" import kubeconfig with context %}
{%- set certs = kube.cert_dir %}
{%- set admin_config = certs ~ '/admin.kubeconfig' %}
{%- set kubectl = kube.bin_dir ~ '/kubectl --kubeconfig=' ~ admin_config %}
{%- set manifest = '/etc/kubernetes/kube-up-rbac.yaml' %}
{#- All nodes share one kubelet identity (CN=kubelet, not system:node:<name>), so the Node
    authorizer does not apply to it; it gets the system:node role cluster-wide instead. #}
{%- set binding = {
  'apiVersion': 'rbac.authorization.k8s.io/v1',
  'kind': 'ClusterRoleBinding',
  'metadata': {'name': 'kube-up:kubelet', 'labels': {'kube-up.io/managed': 'true'}},
  'roleRef': {'apiGroup': 'rbac.authorization.k8s.io', 'kind': 'ClusterRole', 'name': 'system:node'},
  'subjects': [{'apiGroup': 'rbac.authorization.k8s.io', 'kind': 'User', 'name': 'kubelet'}],
} %}

include:
  - kube-pki
  - kube-binaries
  - kube-apiserver

kube-admin-kubeconfig:
  file.managed:
    - name: {{ admin_config }}
    - mode: "0600"
    - contents: {{ kubeconfig('admin', kube.apiserver_url, certs ~ '/kubecfg.crt',
        certs ~ '/kubecfg.key', certs ~ '/ca.crt') | tojson }}

kube-rbac-manifest:
  file.managed:
    - name: {{ manifest }}
    - makedirs: True
    - mode: "0644"
    - contents: {{ binding | yaml(False) | tojson }}

kube-apiserver-ready:
  cmd.run:
    - name: >-
        timeout 300 sh -c 'until {{ kubectl }} get --raw=/readyz >/dev/null 2>&1;
        do sleep 2; done'
    - require:
      - service: kube-apiserver
      - file: kube-admin-kubeconfig
      - file: kube-binary-kubectl

kube-rbac-bindings:
  cmd.run:
    - name: {{ kubectl }} apply -f {{ manifest }}
    # `kubectl diff` exits 0 only when the cluster already matches the manifest.
    - unless: {{ kubectl }} diff -f {{ manifest }}
    - require:
      - cmd: kube-apiserver-ready
      - file: kube-rbac-manifest

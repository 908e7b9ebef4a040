{#- Cluster DNS: CoreDNS behind the kube-dns Service at DNS_SERVER_IP, which every kubelet gives
    its pods as their resolver. Applied from the master with the admin kubeconfig once the
    apiserver is ready; with ENABLE_CLUSTER_DNS=false the addon is taken out again. Names outside
    the cluster are forwarded to the VMs' own resolver only when they have one (grain
    dns_upstream, from the VM's resolv.conf): localcloud's closed network has none, and there
    CoreDNS answers for the cluster domain alone. #}
{%- from "map.jinja" import kube with context %}
{%- set kubectl = kube.bin_dir ~ '/kubectl --kubeconfig=' ~ kube.cert_dir ~ '/admin.kubeconfig' %}
{%- set manifest = kube.addons_dir ~ '/coredns.yaml' %}
{%- set names = 'deployment/coredns service/kube-dns configmap/coredns serviceaccount/coredns' %}

include:
  - kube-rbac

{%- if kube.cluster_dns %}
{%-   set corefile = [
  '.:53 {',
  '    errors',
  '    health {',
  '        lameduck 5s',
  '    }',
  '    ready',
  '    kubernetes ' ~ kube.dns_domain ~ ' in-addr.arpa ip6.arpa {',
  '        pods insecure',
  '        fallthrough in-addr.arpa ip6.arpa',
  '        ttl 30',
  '    }',
  '    prometheus :9153',
] + (['    forward . /etc/resolv.conf', '    loop'] if kube.dns_upstream else []) + [
  '    cache 30',
  '    reload',
  '    loadbalance',
  '}',
] %}
{#-   Each object gets its own copy of the labels, so the YAML has no anchors. #}
{%-   set labels = {'k8s-app': 'kube-dns', 'kube-up.io/managed': 'true'} %}
{%-   set ports = [
  {'name': 'dns', 'port': 53, 'protocol': 'UDP'},
  {'name': 'dns-tcp', 'port': 53, 'protocol': 'TCP'},
  {'name': 'metrics', 'port': 9153, 'protocol': 'TCP'},
] %}
{%-   set container = {
  'name': 'coredns',
  'image': kube.dns_image,
  'imagePullPolicy': 'IfNotPresent',
  'args': ['-conf', '/etc/coredns/Corefile'],
  'ports': [
    {'name': 'dns', 'containerPort': 53, 'protocol': 'UDP'},
    {'name': 'dns-tcp', 'containerPort': 53, 'protocol': 'TCP'},
    {'name': 'metrics', 'containerPort': 9153, 'protocol': 'TCP'},
  ],
  'resources': {'requests': {'cpu': '100m', 'memory': '70Mi'}, 'limits': {'memory': '170Mi'}},
  'volumeMounts': [{'name': 'config', 'mountPath': '/etc/coredns', 'readOnly': True}],
  'livenessProbe': {'httpGet': {'path': '/health', 'port': 8080}, 'initialDelaySeconds': 60,
                    'timeoutSeconds': 5, 'failureThreshold': 5},
  'readinessProbe': {'httpGet': {'path': '/ready', 'port': 8181}},
  'securityContext': {
    'allowPrivilegeEscalation': False,
    'readOnlyRootFilesystem': True,
    'capabilities': {'add': ['NET_BIND_SERVICE'], 'drop': ['ALL']},
  },
} %}
{%-   set items = [
  {'apiVersion': 'v1', 'kind': 'ServiceAccount',
   'metadata': {'name': 'coredns', 'namespace': 'kube-system', 'labels': dict(labels)}},
  {'apiVersion': 'rbac.authorization.k8s.io/v1', 'kind': 'ClusterRole',
   'metadata': {'name': 'kube-up:coredns', 'labels': dict(labels)},
   'rules': [
     {'apiGroups': [''], 'resources': ['endpoints', 'services', 'pods', 'namespaces'],
      'verbs': ['list', 'watch']},
     {'apiGroups': ['discovery.k8s.io'], 'resources': ['endpointslices'],
      'verbs': ['list', 'watch']},
   ]},
  {'apiVersion': 'rbac.authorization.k8s.io/v1', 'kind': 'ClusterRoleBinding',
   'metadata': {'name': 'kube-up:coredns', 'labels': dict(labels)},
   'roleRef': {'apiGroup': 'rbac.authorization.k8s.io', 'kind': 'ClusterRole',
               'name': 'kube-up:coredns'},
   'subjects': [{'kind': 'ServiceAccount', 'name': 'coredns', 'namespace': 'kube-system'}]},
  {'apiVersion': 'v1', 'kind': 'ConfigMap',
   'metadata': {'name': 'coredns', 'namespace': 'kube-system', 'labels': dict(labels)},
   'data': {'Corefile': corefile | join('\n') ~ '\n'}},
  {'apiVersion': 'apps/v1', 'kind': 'Deployment',
   'metadata': {'name': 'coredns', 'namespace': 'kube-system', 'labels': dict(labels)},
   'spec': {
     'replicas': 1,
     'selector': {'matchLabels': {'k8s-app': 'kube-dns'}},
     'template': {
       'metadata': {'labels': dict(labels)},
       'spec': {
         'serviceAccountName': 'coredns',
         'priorityClassName': 'system-cluster-critical',
         'dnsPolicy': 'Default',
         'tolerations': [{'key': 'CriticalAddonsOnly', 'operator': 'Exists'}],
         'containers': [container],
         'volumes': [{'name': 'config', 'configMap': {'name': 'coredns'}}],
       },
     },
   }},
  {'apiVersion': 'v1', 'kind': 'Service',
   'metadata': {'name': 'kube-dns', 'namespace': 'kube-system',
                'labels': dict(labels, **{'kubernetes.io/name': 'CoreDNS'})},
   'spec': {'selector': {'k8s-app': 'kube-dns'}, 'clusterIP': kube.dns_server_ip,
            'ports': ports}},
] %}

kube-dns-manifest:
  file.managed:
    - name: {{ manifest }}
    - makedirs: True
    - mode: "0644"
    - contents: {{ {'apiVersion': 'v1', 'kind': 'List', 'items': items} | yaml(False) | tojson }}

kube-dns:
  cmd.run:
    - name: {{ kubectl }} apply -f {{ manifest }}
    # `kubectl diff` exits 0 only when the cluster already matches the manifest.
    - unless: {{ kubectl }} diff -f {{ manifest }}
    - require:
      - cmd: kube-apiserver-ready
      - file: kube-dns-manifest
{%- else %}

kube-dns-absent:
  cmd.run:
    - name: >-
        {{ kubectl }} -n kube-system delete {{ names }} --ignore-not-found &&
        {{ kubectl }} delete clusterrolebinding/kube-up:coredns clusterrole/kube-up:coredns
        --ignore-not-found
    - onlyif: {{ kubectl }} -n kube-system get serviceaccount/coredns
    - require:
      - cmd: kube-apiserver-ready
{%- endif %}

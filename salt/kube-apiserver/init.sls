{#- kube-apiserver: HTTPS on the master's IP (the `kubernetes` Service endpoint), every request
    authenticated (client certs, service account tokens, or nginx's front-proxy headers). #}
{%- from "map.jinja" import kube with context %}
{%- from "systemd.jinja" import unit with context %}
{%- set certs = kube.cert_dir %}

include:
  - kube-pki
  - kube-binaries
  - etcd

kube-apiserver-unit:
  file.managed:
    - name: /etc/systemd/system/kube-apiserver.service
    - mode: "0644"
    - contents: {{ unit('Kubernetes API server', kube.bin_dir ~ '/kube-apiserver', [
        '--etcd-servers=http://127.0.0.1:2379',
        '--bind-address=0.0.0.0',
        '--secure-port=' ~ kube.apiserver_port,
        '--advertise-address=' ~ kube.master_ip,
        '--service-cluster-ip-range=' ~ kube.service_cidr,
        '--tls-cert-file=' ~ certs ~ '/apiserver.crt',
        '--tls-private-key-file=' ~ certs ~ '/apiserver.key',
        '--client-ca-file=' ~ certs ~ '/ca.crt',
        '--anonymous-auth=false',
        '--authorization-mode=Node,RBAC',
        '--enable-admission-plugins=NodeRestriction',
        '--allow-privileged=true',
        '--service-account-key-file=' ~ certs ~ '/service-account.pub',
        '--service-account-signing-key-file=' ~ certs ~ '/service-account.key',
        '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
        '--kubelet-client-certificate=' ~ certs ~ '/apiserver-kubelet-client.crt',
        '--kubelet-client-key=' ~ certs ~ '/apiserver-kubelet-client.key',
        '--kubelet-preferred-address-types=InternalIP,Hostname',
        '--requestheader-client-ca-file=' ~ certs ~ '/front-proxy-ca.crt',
        '--requestheader-username-headers=X-Remote-User',
        '--requestheader-group-headers=X-Remote-Group',
        '--profiling=false',
        '--v=2',
      ], after=['etcd.service']) | tojson }}

kube-apiserver:
  service.running:
    - enable: True
    - require:
      - service: etcd
    - watch:
      - file: kube-apiserver-unit
      - file: kube-binary-kube-apiserver
      - file: kube-pki-ca.crt
      - file: kube-pki-apiserver.crt
      - file: kube-pki-apiserver.key
      - file: kube-pki-service-account.key
      - file: kube-pki-service-account.pub
      - file: kube-pki-apiserver-kubelet-client.crt
      - file: kube-pki-apiserver-kubelet-client.key
      - file: kube-pki-front-proxy-ca.crt

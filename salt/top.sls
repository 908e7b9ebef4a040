# Masterless highstate: the startup script sets the `roles` grain, which picks the states.
base:
  'roles:kubernetes-master':
    - match: grain
    - base
    - kube-pki
    - kube-binaries
    - etcd
    - kube-apiserver
    - kube-controller-manager
    - kube-scheduler
    - nginx
    - kube-rbac
    - kube-dns
  'roles:kubernetes-pool':
    - match: grain
    - base
    - kube-pki
    - kube-binaries
    - containerd
    - cni
    - node-images
    - kubelet
    - kube-proxy

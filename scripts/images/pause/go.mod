module kubeup.local/pause

go 1.22

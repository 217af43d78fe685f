//go:build tools

// Package tools pins the API packages scripts/build-crds.sh runs controller-gen on,
// so that `go mod tidy` keeps them in go.mod/go.sum.
package tools

import (
	_ "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	_ "github.com/fluxcd/helm-controller/api/v2"
	_ "github.com/fluxcd/source-controller/api/v1"
)

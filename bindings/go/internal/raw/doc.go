// Package raw is the SWIG-generated layer of the starkv Go binding (from bindings/starkv.i);
// package starkv is the API. The generated files (raw.go, raw_wrap.c) are not checked in: the
// CMake build writes them, or run `go generate` here (swig 4 on PATH) before `go build`.
package raw

//go:generate swig -go -cgo -intgosize 64 -module raw -I../../../../include -I../../.. -outdir . -o raw_wrap.c ../../../starkv.i

module github.com/starkv/starkv/samples/go

go 1.19

require github.com/starkv/starkv/bindings/go v0.0.0

replace github.com/starkv/starkv/bindings/go => ../../bindings/go

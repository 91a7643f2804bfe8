module github.com/starkv/starkv/bindings/go

go 1.19

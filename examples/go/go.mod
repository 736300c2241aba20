module kafkasender-example

go 1.22

require kafkasender v0.0.0

replace kafkasender => ../../bindings/go

module kafkasender

go 1.22

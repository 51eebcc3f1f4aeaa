-- Which hub instance committed a batch (several may consume one ingress queue).
ALTER TABLE batches ADD COLUMN instance text;

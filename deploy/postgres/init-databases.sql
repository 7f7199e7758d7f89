-- One database per service (DESIGN.md: no service reads another's database).
CREATE DATABASE genhub_gateway;
CREATE DATABASE genhub_billing;
CREATE DATABASE genhub_orchestrator;
CREATE DATABASE genhub_storage;
CREATE DATABASE genhub_notifier;

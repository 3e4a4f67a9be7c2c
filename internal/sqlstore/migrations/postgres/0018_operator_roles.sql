-- Operator roles (issue 13, R8, R46): admin keeps organisations, licences
-- and operators; support sees that an organisation exists and its licence,
-- and more only through the customer's grant; security keeps address
-- blocks, alarms and the platform chain. Existing operators become admins.
ALTER TABLE operators ADD COLUMN role TEXT NOT NULL DEFAULT 'admin';

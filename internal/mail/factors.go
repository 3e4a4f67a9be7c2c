package mail

// FactorsReset tells a person that their second factors were removed by a
// manager or the operator (R17) and that they sign in with the password
// alone until they set one up again; Data.Link, a link to sign in, is
// optional.
const FactorsReset Kind = "factors_reset"

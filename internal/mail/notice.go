package mail

// NoticeWaiting tells a person that a notice waits in their kluis inbox
// (issue 13: an erasure on request, a new manager). It says nothing of what
// the notice holds — no names, no addresses, no reasons (R45); Data.Link,
// the inbox, is required.
const NoticeWaiting Kind = "notice_waiting"

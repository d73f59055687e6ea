/*
 * inv_lead.c - the outbox relay's leadership state (inv_lead.h).
 */
#include "inv_lead.h"

void inv_lead_init(inv_lead *l)
{
    l->session = 0;
    l->listening = false;
    l->leader = false;
}

inv_lead_step inv_lead_next(inv_lead *l, uint64_t session, bool pending)
{
    if (session != l->session) {
        /* What the old session held (lock, LISTEN) ended with it. */
        l->session = session;
        l->listening = false;
        l->leader = false;
    }
    if (session == 0)
        return INV_LEAD_CONNECT;
    if (!l->listening)
        return INV_LEAD_LISTEN;
    if (l->leader)
        return INV_LEAD_ROUND;
    return pending ? INV_LEAD_FLUSH : INV_LEAD_ACQUIRE;
}

void inv_lead_listened(inv_lead *l, uint64_t session, bool ok)
{
    if (session != 0 && session == l->session)
        l->listening = ok;
}

void inv_lead_acquired(inv_lead *l, uint64_t session, bool got)
{
    l->leader = got && session != 0 && session == l->session && l->listening;
}

void inv_lead_round(inv_lead *l, uint64_t session, bool ran, bool held)
{
    if (session != l->session || (ran && !held))
        l->leader = false;
}

bool inv_lead_is_leader(const inv_lead *l, uint64_t session)
{
    return l->leader && session != 0 && session == l->session;
}

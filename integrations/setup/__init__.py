"""The setup wizard's steps, shared by the console (integrations/console/wizard.py) and the command
line (`connector setup`, integrations/cli/setup.py): each step validates its answers, asks the
customer's systems through integrations/flows/onboarding/, and saves the tenant's own rows plus the
wizard's place (SetupProgress). Nothing here writes to Acumatica or Asana except `switch_on`, the
operator's explicit last step (webhook registration).
"""
